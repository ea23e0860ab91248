"""The documents that cross between the TypeScript service and the Python jobs, checked against one set of
JSON Schemas (draft 2020-12): the erasure order (read here), the erasure progress and certificate (written here),
the streaming exactly-once marker, the key inventory (written by the re-keying job) and the table registry (read by
the re-keying and maintenance jobs, as by the service).

The canonical schemas live in the repository's top-level `contracts/` folder, next to golden documents that the
TypeScript and Python tests both load. The wheel cannot reach that folder, so a byte-identical copy ships as
package data in `spark_udfs/schemas/` (tests/test_contracts.py fails when the two differ; copy them with
`cp contracts/*.schema.json spark-udfs/src/spark_udfs/schemas/`). A copy checked by a test was chosen over a
build step because an editable install, an sdist and a wheel then all read the same files the same way.

64-bit integers (snapshot ids, batch ids, file, byte and row counts) travel as decimal strings: a JSON number
above 2^53 is rounded by JavaScript. `int64` turns a Python int into that form.

Errors name the document and the path of the field at fault, never a value (an order holds pseudonyms).
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource

from .errors import ValueFreeError

ContractName = Literal[
    "erasure-order", "erasure-progress", "erasure-certificate", "stream-marker", "key-inventory", "table-registry"
]
CONTRACTS: tuple[ContractName, ...] = (
    "erasure-order",
    "erasure-progress",
    "erasure-certificate",
    "stream-marker",
    "key-inventory",
    "table-registry",
)
SCHEMA_FILES: tuple[str, ...] = ("common.schema.json", *(f"{name}.schema.json" for name in CONTRACTS))


class ContractError(ValueFreeError, ValueError):
    """A document does not match its contract; the message names the document and the field, not the value."""

    def __init__(self, contract: str, path: str, reason: str) -> None:
        super().__init__(f"{contract}: {path}: {reason}")
        self.contract = contract
        self.path = path
        self.reason = reason


def schema_text(file_name: str) -> str:
    """A schema file's text as shipped in the package."""
    return files("spark_udfs").joinpath("schemas", file_name).read_text(encoding="utf-8")


@cache
def _validators() -> dict[str, Draft202012Validator]:
    schemas: dict[str, Any] = {name: json.loads(schema_text(name)) for name in SCHEMA_FILES}
    registry: Registry[Any] = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas.values()
    )
    return {name: Draft202012Validator(schemas[f"{name}.schema.json"], registry=registry) for name in CONTRACTS}


# What a failed keyword means, said without the value (jsonschema's own messages quote it).
_REASONS = {
    "type": "has the wrong type",
    "pattern": "does not have the required form",
    "required": "misses a required field",
    "additionalProperties": "has a field the contract does not allow",
    "propertyNames": "has a field name the contract does not allow",
    "enum": "is not one of the allowed values",
    "const": "is not the required value",
    "minItems": "has too few items",
    "uniqueItems": "has duplicate items",
    "minLength": "is too short",
    "maxLength": "is too long",
    "minProperties": "has too few fields",
    "minimum": "is too small",
    "maximum": "is too large",
    "oneOf": "matches none of the allowed forms",
}


def _path(parts: Any) -> str:
    text = "$"
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def validate(contract: ContractName, document: object) -> None:
    """Raises ContractError for the first (most specific) mismatch of `document` with its contract."""
    error = best_match(_validators()[contract].iter_errors(document))
    if error is None:
        return
    # A field name inside a record (column names, marker ids) would be part of the path; they are ours, not a subject's.
    reason = _REASONS.get(str(error.validator), f"fails {error.validator}")
    if error.validator == "required" and isinstance(error.instance, dict):
        # The missing field's name comes from the schema, not from the document: safe to say.
        reason += ": " + ", ".join(str(name) for name in error.validator_value if name not in error.instance)
    raise ContractError(contract, _path(error.absolute_path), reason)


def common_pattern(definition: str) -> str:
    """The regular expression of a shared definition (tableName, identifier, ...), for checks outside a document."""
    pattern: str = json.loads(schema_text("common.schema.json"))["$defs"][definition]["pattern"]
    return pattern


def int64(value: int | None) -> str | None:
    """A 64-bit integer as the contracts carry it (a decimal string); None stays None."""
    return None if value is None else str(int(value))


def count(value: int) -> str:
    """A count from Spark or Iceberg (a Java long) as the contracts carry it."""
    return str(int(value))
