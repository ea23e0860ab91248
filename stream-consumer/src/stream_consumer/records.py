"""From raw Kinesis records to table rows: parse JSON against the declared schema, pseudonymize the
configured fields through the API, and turn every record that cannot become a row into a dead letter.

`RecordProcessor.process(batch)` works on one Arrow batch of the source's rows (`data`, `streamName`,
`partitionKey`, `sequenceNumber`, `approximateArrivalTimestamp`) and returns one Arrow batch in
`processed_schema()`: the declared fields (pseudonymized where configured), the record's stream position,
and the dead-letter columns, which are null for good rows. Spark runs it per partition with mapInArrow,
so each unique value of a batch goes to the API once.

A record whose subject's erasure was filed (the API withholds the pseudonym of any of its pseudonymized
fields) is neither a row nor a dead letter: its fields are nulled, its reason code is `subject-erased` and
nothing of it is kept, not even encrypted; the micro-batch loop counts it and leaves it out (or fails).

Dead letters keep no plaintext: a reason that names the field and the rule (never the value), the stream
position, and the raw record encrypted with the API's randomized AES-SIV under the dead-letter context
(base64 of the bytes, in chunks the API accepts). A data steward with the `reidentify` role can decrypt
it to repair and replay the record (`decrypt_dead_letter`); nobody else can read it, and two copies of
the same poison record do not even look equal.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from spark_udfs import ClientConfig, PseudonymizationClient, shared_client

FieldType = Literal["string", "int", "long", "double", "boolean", "timestamp", "date"]
FIELD_TYPES: tuple[FieldType, ...] = ("string", "int", "long", "double", "boolean", "timestamp", "date")

ARROW_TYPES: dict[FieldType, pa.DataType] = {
    "string": pa.string(),
    "int": pa.int32(),
    "long": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
}

#: Columns every row carries besides the declared fields: where the record was in the stream.
POSITION_COLUMNS = (("kinesis_sequence_number", pa.string()), ("kinesis_arrival_time", pa.timestamp("us", tz="UTC")))
#: Null for rows that went through; set for dead letters.
DEAD_LETTER_COLUMNS = (
    ("dead_letter_reason_code", pa.string()),
    ("dead_letter_reason", pa.string()),
    ("dead_letter_record", pa.list_(pa.string())),
    ("dead_letter_record_bytes", pa.int32()),
)

ReasonCode = Literal["not-json", "not-object", "missing-field", "wrong-type", "refused-by-api"]
#: The reason code of a record withheld by suppression at ingestion: never written, never a dead letter.
SUBJECT_ERASED = "subject-erased"


@dataclass(frozen=True)
class DeclaredSchema:
    """The fields a record must have. Fields not declared are ignored; null counts as missing."""

    fields: Mapping[str, FieldType]
    required: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class DeadLetterConfig:
    #: The API context that encrypts raw records (randomized mode; its policy must be `deterministic`).
    context: str = "dead_letter"
    #: Raw bytes per encrypted chunk: 768 bytes are 1,024 base64 characters, the API's default value limit.
    chunk_bytes: int = 768


def processed_schema(schema: DeclaredSchema) -> pa.Schema:
    columns = [(name, ARROW_TYPES[kind]) for name, kind in schema.fields.items()]
    return pa.schema(columns + list(POSITION_COLUMNS) + list(DEAD_LETTER_COLUMNS))


class _Invalid(Exception):
    def __init__(self, code: ReasonCode, reason: str) -> None:
        self.code = code
        self.reason = reason


def _reject_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def _convert(name: str, kind: FieldType, value: Any) -> Any:
    """The value as the declared type, or _Invalid naming the field and the rule (never the value)."""
    ok: bool
    if kind == "string":
        ok = isinstance(value, str)
    elif kind in ("int", "long"):
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and not (-(2**31) <= value < 2**31 if kind == "int" else -(2**63) <= value < 2**63):
            raise _Invalid("wrong-type", f"field {name}: out of range for {kind}")
    elif kind == "double":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "timestamp":
        ok = isinstance(value, str)
        if ok:
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                ok = False
            else:
                # A timestamp without an offset is taken as UTC, as Spark's session time zone does here.
                value = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    else:  # date
        ok = isinstance(value, str)
        if ok:
            try:
                value = date.fromisoformat(value)
            except ValueError:
                ok = False
    if not ok:
        raise _Invalid("wrong-type", f"field {name}: expected {_describe(kind)}")
    return value


def _describe(kind: FieldType) -> str:
    return {
        "timestamp": "an ISO 8601 timestamp string",
        "date": "an ISO 8601 date string (YYYY-MM-DD)",
        "int": "a 32-bit integer",
        "long": "a 64-bit integer",
        "double": "a finite number",
    }.get(kind, f"a {kind}")


def parse_record(data: bytes, schema: DeclaredSchema) -> dict[str, Any]:
    """The declared fields of one record, converted; raises _Invalid with a reason code and text."""
    try:
        parsed: Any = json.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError: bytes that are not UTF-8
        raise _Invalid("not-json", "the record is not UTF-8 JSON") from None
    if not isinstance(parsed, dict):
        raise _Invalid("not-object", "the record is JSON but not an object")
    row: dict[str, Any] = {}
    for name, kind in schema.fields.items():
        value = parsed.get(name)
        if value is None:
            if name in schema.required:
                raise _Invalid("missing-field", f"field {name}: required")
            row[name] = None
        else:
            row[name] = _convert(name, kind, value)
    return row


def _identifiers(data: bytes, columns: Mapping[str, str]) -> dict[str, str]:
    """The string values of the pseudonymized fields of a record that failed its schema, if it is a JSON object."""
    try:
        parsed: Any = json.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(parsed, dict):
        return {}
    return {name: parsed[name] for name in columns if isinstance(parsed.get(name), str)}


class RecordProcessor:
    """Parses, validates and pseudonymizes Arrow batches of source rows. Picklable: Spark ships it to tasks."""

    def __init__(
        self, schema: DeclaredSchema, columns: Mapping[str, str], api: ClientConfig, dead_letter: DeadLetterConfig
    ) -> None:
        for name in columns:
            if schema.fields.get(name) != "string":
                raise ValueError(f"columns: {name} must be a declared string field to be pseudonymized")
        self.schema = schema
        self.columns = dict(columns)
        self.api = api
        self.dead_letter = dead_letter
        self.output_schema = processed_schema(schema)

    def process_all(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        client = shared_client(self.api)
        for batch in batches:
            yield self.process(batch, client)

    def process(self, batch: pa.RecordBatch, client: PseudonymizationClient) -> pa.RecordBatch:
        data = batch.column("data").to_pylist()
        rows: list[dict[str, Any] | None] = []
        problems: dict[int, tuple[ReasonCode, str]] = {}
        for index, raw in enumerate(data):
            try:
                rows.append(parse_record(raw, self.schema))
            except _Invalid as invalid:
                rows.append(None)
                problems[index] = (invalid.code, invalid.reason)

        names = list(self.schema.fields)
        values: dict[str, list[Any]] = {name: [None if row is None else row[name] for row in rows] for name in names}
        # A record that fails its schema may still carry a withheld subject's identifier: ask about those too, so
        # it is left out rather than kept (encrypted) as a dead letter.
        for index in problems:
            for name, value in _identifiers(data[index], self.columns).items():
                values[name][index] = value
        withheld: set[int] = set()
        for name, context in self.columns.items():
            values[name] = self._pseudonymize(client, name, context, values[name], problems, withheld)
        # A withheld record is the subject's data: it does not become a dead letter, even if a field was refused.
        for index in withheld:
            problems.pop(index, None)
        for index in [*problems, *withheld]:  # a record refused for one field loses its other fields too
            for name in names:
                values[name][index] = None

        arrays = [pa.array(values[name], type=ARROW_TYPES[kind]) for name, kind in self.schema.fields.items()]
        arrays.append(batch.column("sequenceNumber").cast(pa.string()))
        arrays.append(batch.column("approximateArrivalTimestamp").cast(pa.timestamp("us", tz="UTC")))
        arrays.extend(self._dead_letters(client, data, problems, withheld, batch.num_rows))
        return pa.RecordBatch.from_arrays(arrays, schema=self.output_schema)

    def _pseudonymize(
        self,
        client: PseudonymizationClient,
        name: str,
        context: str,
        column: list[Any],
        problems: dict[int, tuple[ReasonCode, str]],
        withheld: set[int],
    ) -> list[Any]:
        """Pseudonyms for the column (unique values once); values the API refuses make their records dead letters,
        values it withholds (the subject's erasure was filed) add their records to `withheld`. A record refused for
        an earlier field is still asked about: it must not become a dead letter if its subject is withheld here."""
        array = pa.array([None if i in withheld else v for i, v in enumerate(column)], type=pa.string())
        unique = pc.unique(array.drop_null())
        answer, refused = client.pseudonymize_valid(context, unique.to_pylist())
        positions = pc.index_in(array, value_set=unique).to_pylist()
        result: list[Any] = []
        for index, position in enumerate(positions):
            if position is None:
                result.append(None)
            elif position in answer.suppressed:
                withheld.add(index)
                result.append(None)
            elif position in refused:
                problems.setdefault(
                    index,
                    ("refused-by-api", f"field {name}: refused by the pseudonymization API ({refused[position]})"),
                )
                result.append(None)
            else:
                result.append(answer.pseudonyms[position])
        return result

    def _dead_letters(
        self,
        client: PseudonymizationClient,
        data: Sequence[bytes],
        problems: Mapping[int, tuple[ReasonCode, str]],
        withheld: set[int],
        size: int,
    ) -> list[pa.Array]:
        codes: list[str | None] = [None] * size
        reasons: list[str | None] = [None] * size
        lengths: list[int | None] = [None] * size
        for index in withheld:  # marked, with nothing of the record kept
            codes[index], reasons[index] = SUBJECT_ERASED, "a pseudonymized field's subject has an erasure filed"
        chunks: list[str] = []
        owners: list[int] = []
        for index, (code, reason) in problems.items():
            codes[index], reasons[index], lengths[index] = code, reason, len(data[index])
            raw = data[index]
            pieces = [
                raw[i : i + self.dead_letter.chunk_bytes] for i in range(0, len(raw), self.dead_letter.chunk_bytes)
            ] or [b""]
            chunks.extend(base64.b64encode(piece).decode("ascii") for piece in pieces)
            owners.extend([index] * len(pieces))
        encrypted = client.pseudonymize(self.dead_letter.context, chunks, deterministic=False) if chunks else []
        by_record: dict[int, list[str]] = {index: [] for index in problems}
        for owner, ciphertext in zip(owners, encrypted, strict=True):
            by_record[owner].append(ciphertext)
        records = [by_record.get(index) for index in range(size)]
        return [
            pa.array(codes, pa.string()),
            pa.array(reasons, pa.string()),
            pa.array(records, pa.list_(pa.string())),
            pa.array(lengths, pa.int32()),
        ]


def decrypt_dead_letter(client: PseudonymizationClient, context: str, record: Sequence[str]) -> bytes:
    """The raw record of a dead letter (needs an API key with the reidentify role for the context)."""
    return b"".join(base64.b64decode(chunk) for chunk in client.reidentify(context, list(record)))
