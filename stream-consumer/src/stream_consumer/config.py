"""The streaming job's configuration: parsed once from JSON into typed dataclasses, with errors that name the
key at fault (JobConfigError, exit 2), before anything starts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from spark_udfs import ClientConfig
from spark_udfs.jobs.config import (
    IDENTIFIER,
    JobConfigError,
    Section,
    check_partitioning,
    check_table_name,
    parse_api,
    parse_catalog,
    parse_suppressed,
)
from spark_udfs.jobs.session import CatalogConfig
from spark_udfs.spark import SuppressedPolicy

from .records import FIELD_TYPES, DeadLetterConfig, DeclaredSchema, FieldType

Connector = Literal["python", "aws-kinesis"]
Position = Literal["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"]
POSITIONS: tuple[Position, ...] = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")


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
    #: A record whose subject's erasure was filed: "drop" it (counted in each batch's progress) or "fail" the job.
    suppressed: SuppressedPolicy = "drop"


def parse_config(raw: Mapping[str, object]) -> StreamJobConfig:
    """Validates the job configuration, naming the key at fault."""
    config = Section(raw)
    source = parse_source(config.section("source"))
    schema = parse_schema(config.section("schema"))
    columns = config.text_map("columns", 'must map field names to contexts, e.g. {"vin": "vin"}')
    for name in columns:
        if schema.fields.get(name) != "string":
            raise JobConfigError(f"columns.{name}: must be a declared string field")

    catalog = parse_catalog(config.section("catalog").values)
    table_section = config.section("table")
    table = check_table_name(table_section.text("name", f"{catalog.name}.streaming.events"), catalog, "table.name")
    partition_by = check_partitioning(table_section.values.get("partitionBy", []), columns, "table.partitionBy")
    dead_section = config.section("deadLetter")
    dead_table = check_table_name(dead_section.text("table", f"{table}_dead_letter"), catalog, "deadLetter.table")
    if dead_table == table:
        raise JobConfigError("deadLetter.table: must differ from table.name")
    chunk_bytes = dead_section.integer("chunkBytes", 768)
    if not 3 <= chunk_bytes <= 49_152 or chunk_bytes % 3:
        raise JobConfigError(
            "deadLetter.chunkBytes: must be a multiple of 3 between 3 and 49152 "
            "(base64 of it must fit the API's value limit)"
        )
    dead_letter = DeadLetterConfig(dead_section.text("context", "dead_letter"), chunk_bytes)

    checkpoint = config.required_text("checkpointLocation", "a folder, or an s3:// prefix on EMR")
    trigger = config.number("triggerSeconds", 10.0)
    if not 0.1 <= trigger <= 3600:
        raise JobConfigError("triggerSeconds: must be between 0.1 and 3600")
    return StreamJobConfig(
        source=source,
        schema=schema,
        columns=columns,
        api=parse_api(config.section("api").values),
        table=table,
        dead_letter_table=dead_table,
        checkpoint_location=checkpoint,
        catalog=catalog,
        dead_letter=dead_letter,
        partition_by=partition_by,
        trigger_seconds=trigger,
        query_name=config.text("queryName", "stream-consumer"),
        master=config.optional_text("master"),
        suppressed=parse_suppressed(config),
    )


def parse_source(section: Section) -> SourceConfig:
    stream = section.required_text("streamName")
    region = section.required_text("region")
    positions: dict[str, Position] = {name: name for name in POSITIONS}
    position = positions.get(section.text("startingPosition", "TRIM_HORIZON").upper())
    if position is None:
        raise JobConfigError("source.startingPosition: must be TRIM_HORIZON, LATEST or AT_TIMESTAMP")
    timestamp = section.optional_text("startingTimestamp")
    if position == "AT_TIMESTAMP":
        try:
            datetime.fromisoformat(timestamp or "")
        except ValueError:
            raise JobConfigError("source.startingTimestamp: AT_TIMESTAMP needs an ISO 8601 timestamp") from None
    connectors: dict[str, Connector] = {"python": "python", "aws-kinesis": "aws-kinesis"}
    connector = connectors.get(section.text("connector", "python"))
    if connector is None:
        raise JobConfigError("source.connector: must be python or aws-kinesis")
    max_records = section.integer("maxRecordsPerShard", 100_000)
    if max_records < 1:
        raise JobConfigError("source.maxRecordsPerShard: must be at least 1")
    endpoint = section.optional_text("endpointUrl")
    if endpoint is not None:
        check_endpoint_url(endpoint, section.key("endpointUrl"))
    return SourceConfig(stream, region, endpoint, position, timestamp, max_records, connector)


def check_endpoint_url(endpoint: str, key: str) -> None:
    """An endpoint is http(s)://host[:port][/path] and nothing else (boto3 said only `ValueError` at start-up)."""
    try:
        parts = urlsplit(endpoint)
        valid = (
            parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and not parts.query
            and not parts.fragment
            and (parts.port is None or parts.port > 0)
        )
    except ValueError:  # a port that is not a number, a broken IPv6 address
        valid = False
    if not valid or any(character.isspace() for character in endpoint):
        raise JobConfigError(f"{key}: must be a URL such as http://127.0.0.1:5000 (a local Kinesis endpoint)")


def parse_schema(section: Section) -> DeclaredSchema:
    declared = section.values.get("fields")
    if not isinstance(declared, dict) or not declared:
        raise JobConfigError('schema.fields: must map field names to types, e.g. {"vin": "string"}')
    field_types: dict[object, FieldType] = {kind: kind for kind in FIELD_TYPES}
    fields: dict[str, FieldType] = {}
    for name, kind in declared.items():
        if not isinstance(name, str) or not IDENTIFIER.match(name):
            raise JobConfigError(f"schema.fields: {name!r} is not a plain identifier")
        if kind not in field_types:
            raise JobConfigError(f"schema.fields.{name}: must be one of {', '.join(FIELD_TYPES)}")
        if name.startswith(("kinesis_", "dead_letter_")):
            raise JobConfigError(
                f"schema.fields.{name}: names starting with kinesis_ or dead_letter_ are the job's own columns"
            )
        fields[name] = field_types[kind]
    required = section.text_list("required")
    for name in required:
        if name not in fields:
            raise JobConfigError(f"schema.required: {name!r} is not a declared field")
    return DeclaredSchema(fields, frozenset(required))
