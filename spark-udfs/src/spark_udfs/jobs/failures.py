"""Turning Spark's failure text into one line a person can act on, without values.

Which message is shown, in order: our own value-free errors (`ValueFreeError`) whole; a failed Python task's
innermost error (whole for import, file and system errors, else its type: a Python error's message may quote
data); else the JVM's innermost cause (the last `Caused by:` of the Java trace of a Py4JJavaError or of a Spark
error PySpark captured, such as AnalysisException), e.g. Iceberg's "Invalid source type string for transform: day".

A JVM message is shown only from sources that describe tables, schemas and settings: Spark's error conditions
(`[CAST_INVALID_INPUT] …`, whose parameters Spark quotes), Spark SQL's analysis, and Iceberg (the first stack frame
says who threw it); and even then every quoted literal ('…' and "…") is replaced by `'…'`, since a cast error quotes
the value (`The value 'abc' of the type "STRING" …`). Anything else (Java's own `For input string: "abc"`, a
`ClassNotFoundException` naming its input) shows its class only. Identifiers stay: Spark quotes them with backticks.
The message is cut at its first line and 300 characters."""

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


_TRACEBACK = "Traceback (most recent call last):"
#: A Java stack frame, where a Python traceback embedded in Spark's text ends.
_JAVA_FRAME = re.compile(r"^\s+at [\w$.<>]+\(")
#: An exception line of a JVM stack trace: "<fully.qualified.Class>: <message>", alone, after "Caused by: ", or
#: after ": " (the first line of a Py4JJavaError's Java trace). Suppressed exceptions are indented: not matched.
_JAVA_EXCEPTION_LINE = re.compile(
    r"^(?:Caused by: |: )?((?:[a-z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error|Throwable))(?:: ?(.*))?$"
)
#: The first frame under an exception line: who threw it.
_THROWER = re.compile(r"^\tat ([\w$.]+)\(")
#: Whose messages describe tables, schemas, transforms and settings rather than rows.
_DESCRIBING_THROWERS = (
    "org.apache.iceberg.",
    "org.apache.spark.sql.catalyst.analysis.",
    "org.apache.spark.sql.errors.",
)
#: Quoted literals: single- or double-quoted text (a value in a cast error), never backticked identifiers. A
#: backslash escapes the next character inside one (Spark writes 'O\'Brien').
_QUOTED = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"")
_MAX_LENGTH = 300


def without_literals(message: str) -> str:
    """The first line of a JVM message with every quoted literal replaced by '…' (a value can only hide there)."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    replaced = _QUOTED.sub("'…'", first).strip()
    if "'" in replaced.replace("'…'", "") or '"' in replaced:
        return ""  # an unbalanced quote: where a literal ends is unknown, so nothing of it is shown
    return replaced[:_MAX_LENGTH]


def _python_cause(text: str) -> str | None:
    """The innermost error of the last Python traceback in Spark's text, if there is one."""
    if _TRACEBACK not in text:
        return None
    lines = []
    for line in text[text.rindex(_TRACEBACK) :].splitlines()[1:]:
        if _JAVA_FRAME.match(line):
            break
        lines.append(line)
    for line in reversed(lines):
        match = _PYTHON_ERROR_LINE.match(line)
        if match is None or match.group(1) in _WRAPPERS:
            continue
        kind, message = match.group(1), match.group(2).strip()
        if kind in _MESSAGE_SAFE and message:
            return f"{kind}: {message}"[:500]
        return f"{kind} in a Spark task (its message is not shown: it may hold data)"
    return None


def _innermost_java_exception(trace: str) -> tuple[str, str, str] | None:
    """(simple class name, first message line, the class that threw it) of the last exception in a Java trace."""
    innermost: list[str] | None = None
    for line in trace.splitlines():
        match = _JAVA_EXCEPTION_LINE.match(line) if not line.startswith((" ", "\t")) else None
        if match is not None:
            innermost = [match.group(1).rsplit(".", 1)[-1], match.group(2) or "", ""]
            continue
        thrower = _THROWER.match(line)
        if thrower is not None and innermost is not None and not innermost[2]:
            innermost[2] = thrower.group(1)
    return (innermost[0], innermost[1], innermost[2]) if innermost is not None else None


def _shown_jvm_message(kind: str, message: str, thrower: str) -> str:
    if message.startswith("[") or thrower.startswith(_DESCRIBING_THROWERS):
        shown = without_literals(message)
        return f"{kind}: {shown}" if shown else kind
    return f"{kind} (its message is not shown: it may hold data)"


def _jvm_cause(error: BaseException, text: str) -> str | None:
    """The JVM's innermost cause, from the Java trace of a Py4JJavaError, or of a Spark error PySpark captured
    (AnalysisException and the like: PySpark keeps the trace beside the message)."""
    captured = any(kind.__name__ == "CapturedException" for kind in type(error).__mro__)
    trace = getattr(error, "_stackTrace", None) if captured else text
    innermost = _innermost_java_exception(trace) if isinstance(trace, str) else None
    if innermost is not None:
        return _shown_jvm_message(*innermost)
    if captured:
        # No trace: Spark's error conditions only ("[UNRESOLVED_COLUMN…] …").
        return _shown_jvm_message(type(error).__name__, text.strip(), "")
    return None


def root_cause(error: BaseException) -> str:
    """One sentence naming the underlying cause of a failed job, never a value: the message of the last value-free
    error (a `ValueFreeError` subclass) in Spark's task-failure text; else the innermost Python error of a task's
    traceback (whole for import, file and system errors, else its type); else the JVM's innermost cause with quoted
    literals removed; else the error's type."""
    text = str(error)
    names = sorted(ValueFreeError.registered_names)
    lines = text.splitlines()
    for line in reversed(lines):
        for name in names:
            # The traceback's last line for our error reads "<module>.<Name>: <message>".
            marker = f"{name}: "
            if marker in line:
                return line[line.index(marker) + len(marker) :].strip()[:500]
    return _python_cause(text) or _jvm_cause(error, text) or type(error).__name__
