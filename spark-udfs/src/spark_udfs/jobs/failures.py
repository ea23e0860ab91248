"""Turning Spark's failure text into one line a person can act on, without values."""

from __future__ import annotations

from ..errors import ValueFreeError


def root_cause(error: BaseException) -> str:
    """The message of the last value-free error (a `ValueFreeError` subclass) in Spark's task-failure text, or
    just the error's type."""
    names = sorted(ValueFreeError.registered_names)
    for line in reversed(str(error).splitlines()):
        for name in names:
            # The traceback's last line for our error reads "<module>.<Name>: <message>".
            marker = f"{name}: "
            if marker in line:
                return line[line.index(marker) + len(marker) :].strip()[:500]
    return type(error).__name__
