"""Turning Spark's failure text into one line a person can act on, without values."""

from __future__ import annotations

#: Our own errors, whose messages never hold values; Spark's wrapper text around them may hold anything.
KNOWN_ERRORS = ("PseudonymizationError", "ValuesRejected", "KinesisSourceError")


def root_cause(error: BaseException) -> str:
    """The message of the last of our errors in Spark's task-failure text, or just the error's type."""
    for line in reversed(str(error).splitlines()):
        for name in KNOWN_ERRORS:
            # The traceback's last line for our error reads "<module>.<Name>: <message>".
            marker = f"{name}: "
            if marker in line:
                return line[line.index(marker) + len(marker) :].strip()[:500]
    return type(error).__name__
