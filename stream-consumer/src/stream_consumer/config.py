"""The streaming job's configuration: parsed once from JSON into typed dataclasses, with errors that name the
key at fault (JobConfigError, exit 2), before anything starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from spark_udfs import ClientConfig
from spark_udfs.jobs.config import (
    IDENTIFIER,
    JobConfigError,
    check_partitioning,
    check_table_name,
    get_field,
    parse_api,
    parse_catalog,
    section_of,
)
from spark_udfs.jobs.session import CatalogConfig

from .records import FIELD_TYPES, DeadLetterConfig, DeclaredSchema

Connector = Literal["python", "aws-kinesis"]
Position = Literal["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"]


@dataclass(frozen=True)
class SourceConfig:
    stream_name: str
    region: str
    endpoint_url: str | None = None
    starting_position: Position = "TRIM_HORIZON"
    starting_timestamp: str | None = None
    max_records_per_shard: int = 100_000
    #: "python": this package's Kinesis data source (local runs, moderate rates); "aws-kinesis": the
    #: spark-sql-kinesis-connector jar on EMR (same row schema).
    connector: Connector = "python"


@dataclass(frozen=True)
class StreamJobConfig:
    source: SourceConfig
    schema: DeclaredSchema
    columns: dict[str, str]
    api: ClientConfig
    table: str
    dead_letter_table: str
    checkpoint_location: str
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    dead_letter: DeadLetterConfig = field(default_factory=DeadLetterConfig)
    partition_by: tuple[str, ...] = ()
    trigger_seconds: float = 10.0
    query_name: str = "stream-consumer"
    master: str | None = None


def parse_config(raw: dict[str, Any]) -> StreamJobConfig:
    """Validates the job configuration, naming the key at fault."""
    source_raw = section_of(raw, "source")
    stream = get_field(source_raw, "streamName", str, "source")
    if not stream:
        raise JobConfigError("source.streamName: required")
    region = get_field(source_raw, "region", str, "source")
    if not region:
        raise JobConfigError("source.region: required")
    positions: dict[str, Position] = {
        "TRIM_HORIZON": "TRIM_HORIZON",
        "LATEST": "LATEST",
        "AT_TIMESTAMP": "AT_TIMESTAMP",
    }
    position = positions.get(str(get_field(source_raw, "startingPosition", str, "source", "TRIM_HORIZON")).upper())
    if position is None:
        raise JobConfigError("source.startingPosition: must be TRIM_HORIZON, LATEST or AT_TIMESTAMP")
    timestamp = get_field(source_raw, "startingTimestamp", str, "source")
    if position == "AT_TIMESTAMP":
        try:
            datetime.fromisoformat(timestamp or "")
        except ValueError:
            raise JobConfigError("source.startingTimestamp: AT_TIMESTAMP needs an ISO 8601 timestamp") from None
    connector = get_field(source_raw, "connector", str, "source", "python")
    if connector not in ("python", "aws-kinesis"):
        raise JobConfigError("source.connector: must be python or aws-kinesis")
    max_records = get_field(source_raw, "maxRecordsPerShard", int, "source", 100_000)
    if max_records < 1:
        raise JobConfigError("source.maxRecordsPerShard: must be at least 1")
    source = SourceConfig(
        stream, region, get_field(source_raw, "endpointUrl", str, "source"), position, timestamp, max_records, connector
    )

    schema_raw = section_of(raw, "schema")
    fields = schema_raw.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise JobConfigError('schema.fields: must map field names to types, e.g. {"vin": "string"}')
    for name, kind in fields.items():
        if not IDENTIFIER.match(name):
            raise JobConfigError(f"schema.fields: {name!r} is not a plain identifier")
        if kind not in FIELD_TYPES:
            raise JobConfigError(f"schema.fields.{name}: must be one of {', '.join(FIELD_TYPES)}")
        if name.startswith(("kinesis_", "dead_letter_")):
            raise JobConfigError(
                f"schema.fields.{name}: names starting with kinesis_ or dead_letter_ are the job's own columns"
            )
    required = get_field(schema_raw, "required", list, "schema", [])
    for name in required:
        if name not in fields:
            raise JobConfigError(f"schema.required: {name!r} is not a declared field")
    schema = DeclaredSchema(dict(fields), frozenset(required))

    columns = raw.get("columns")
    if (
        not isinstance(columns, dict)
        or not columns
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in columns.items())
    ):
        raise JobConfigError('columns: must map field names to contexts, e.g. {"vin": "vin"}')
    for name in columns:
        if fields.get(name) != "string":
            raise JobConfigError(f"columns.{name}: must be a declared string field")

    catalog = parse_catalog(section_of(raw, "catalog"))
    table_raw = section_of(raw, "table")
    table = check_table_name(
        get_field(table_raw, "name", str, "table", f"{catalog.name}.streaming.events"), catalog, "table.name"
    )
    partition_by = check_partitioning(
        get_field(table_raw, "partitionBy", list, "table", []), columns, "table.partitionBy"
    )
    dead_raw = section_of(raw, "deadLetter")
    dead_table = check_table_name(
        get_field(dead_raw, "table", str, "deadLetter", f"{table}_dead_letter"), catalog, "deadLetter.table"
    )
    if dead_table == table:
        raise JobConfigError("deadLetter.table: must differ from table.name")
    chunk_bytes = get_field(dead_raw, "chunkBytes", int, "deadLetter", 768)
    if not 3 <= chunk_bytes <= 49_152 or chunk_bytes % 3:
        raise JobConfigError(
            "deadLetter.chunkBytes: must be a multiple of 3 between 3 and 49152 "
            "(base64 of it must fit the API's value limit)"
        )
    dead_letter = DeadLetterConfig(get_field(dead_raw, "context", str, "deadLetter", "dead_letter"), chunk_bytes)

    checkpoint = get_field(raw, "checkpointLocation", str, "")
    if not checkpoint:
        raise JobConfigError("checkpointLocation: required (a folder, or an s3:// prefix on EMR)")
    trigger = float(get_field(raw, "triggerSeconds", (int, float), "", 10))
    if not 0.1 <= trigger <= 3600:
        raise JobConfigError("triggerSeconds: must be between 0.1 and 3600")
    query_name = get_field(raw, "queryName", str, "", "stream-consumer")
    return StreamJobConfig(
        source=source,
        schema=schema,
        columns=dict(columns),
        api=parse_api(section_of(raw, "api")),
        table=table,
        dead_letter_table=dead_table,
        checkpoint_location=checkpoint,
        catalog=catalog,
        dead_letter=dead_letter,
        partition_by=partition_by,
        trigger_seconds=trigger,
        query_name=query_name,
        master=get_field(raw, "master", str, ""),
    )
