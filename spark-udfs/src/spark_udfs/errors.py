"""The base of the errors whose messages never hold values (identifiers, pseudonyms, keys, record content).

When such an error fails a Spark task, the driver only sees Spark's text around it; `jobs.failures.root_cause`
picks the error's own message out of that text by class name. Every subclass, in this package or another
(the streaming job's Kinesis source), registers its name on definition, so the driver can show its message
without spark-udfs knowing the other packages.
"""

from __future__ import annotations

from typing import ClassVar


class ValueFreeError(RuntimeError):
    """Subclass it for an error whose message is safe to print: it names rules, keys and types, never values."""

    registered_names: ClassVar[set[str]] = set()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        ValueFreeError.registered_names.add(cls.__name__)
