"""Turning Spark's failure text into one line a person can act on, without values."""

from __future__ import annotations

import re

from ..errors import ValueFreeError

#: Python errors whose message names a module, a file or a system condition, never a row's value: shown whole.
#: Any other error's message may quote data (a ValueError about a value), so only its type is shown.
_MESSAGE_SAFE = frozenset(
    {
        "ModuleNotFoundError",
        "ImportError",
        "FileNotFoundError",
        "PermissionError",
        "IsADirectoryError",
        "NotADirectoryError",
        "ConnectionRefusedError",
        "MemoryError",
    }
)
#: The last line of a Python traceback: "<Type>: <message>" (a dotted module prefix for some).
_PYTHON_ERROR_LINE = re.compile(r"^\s*(?:[A-Za-z_][\w.]*\.)?([A-Z]\w*(?:Error|Exception|Exit|Interrupt)): ?(.*)$")
_WRAPPERS = frozenset({"PythonException", "Py4JJavaError", "SparkException", "StreamingQueryException"})


def root_cause(error: BaseException) -> str:
    """One sentence naming the underlying cause of a failed job, never a value: the message of the last value-free
    error (a `ValueFreeError` subclass) in Spark's task-failure text; else the innermost Python error of the task's
    traceback (whole for import, file and system errors, else its type); else the error's type."""
    text = str(error)
    names = sorted(ValueFreeError.registered_names)
    lines = text.splitlines()
    for line in reversed(lines):
        for name in names:
            # The traceback's last line for our error reads "<module>.<Name>: <message>".
            marker = f"{name}: "
            if marker in line:
                return line[line.index(marker) + len(marker) :].strip()[:500]
    for line in reversed(lines):
        match = _PYTHON_ERROR_LINE.match(line)
        if match is None or match.group(1) in _WRAPPERS:
            continue
        kind, message = match.group(1), match.group(2).strip()
        if kind in _MESSAGE_SAFE and message:
            return f"{kind}: {message}"[:500]
        return f"{kind} in a Spark task (its message is not shown: it may hold data)"
    return type(error).__name__
