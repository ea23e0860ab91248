"""The streaming job: Kinesis -> parse against the declared schema -> pseudonymize -> Iceberg, exactly once.

    stream-consumer --config stream.json [--master local[2]]        (or spark-submit .../stream_consumer/job.py)

Each micro-batch (every `triggerSeconds`) is parsed and pseudonymized per partition (mapInArrow, unique
values once per Arrow batch), then appended to the table, and its bad records to the dead-letter table,
each append at most once per batch id (spark_udfs.jobs.markers). The Spark checkpoint holds the stream position:
after a crash or a kill, the job restarts where the last completed batch ended.

Before Spark starts, the configuration is validated (errors name the key), the stream is described (a
missing stream, refused credentials or an unreachable endpoint are reported as such), and the API is asked
to pseudonymize a probe under every context the job uses. While running, API calls retry with backoff; if
the API stays away longer than the retries, the batch fails, nothing of it is committed, and the job
exits 1 saying so. SIGTERM or Ctrl-C stops after the batch in flight (exit 0).

Progress goes to stdout as one JSON line per batch: counts and timings, never values.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from types import FrameType
from typing import Any, Literal

from spark_udfs import ClientConfig, PseudonymizationClient, PseudonymizationError, ValuesRejected
from spark_udfs.jobs.config import (
    IDENTIFIER,
    JobConfigError,
    check_partitioning,
    check_table_name,
    get_field,
    parse_api,
    parse_catalog,
    read_json,
    section_of,
    sql_properties,
)
from spark_udfs.jobs.failures import root_cause
from spark_udfs.jobs.markers import append_once
from spark_udfs.jobs.session import CatalogConfig

from .records import FIELD_TYPES, DeadLetterConfig, DeclaredSchema, FieldType, RecordProcessor

Connector = Literal["python", "aws-kinesis"]
Position = Literal["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"]

SQL_TYPES: dict[FieldType, str] = {"string": "string", "int": "int", "long": "bigint", "double": "double", "boolean": "boolean", "timestamp": "timestamp", "date": "date"}


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
    positions: dict[str, Position] = {"TRIM_HORIZON": "TRIM_HORIZON", "LATEST": "LATEST", "AT_TIMESTAMP": "AT_TIMESTAMP"}
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
    source = SourceConfig(stream, region, get_field(source_raw, "endpointUrl", str, "source"), position, timestamp, max_records, connector)

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
            raise JobConfigError(f"schema.fields.{name}: names starting with kinesis_ or dead_letter_ are the job's own columns")
    required = get_field(schema_raw, "required", list, "schema", [])
    for name in required:
        if name not in fields:
            raise JobConfigError(f"schema.required: {name!r} is not a declared field")
    schema = DeclaredSchema(dict(fields), frozenset(required))

    columns = raw.get("columns")
    if not isinstance(columns, dict) or not columns or not all(isinstance(k, str) and isinstance(v, str) for k, v in columns.items()):
        raise JobConfigError('columns: must map field names to contexts, e.g. {"vin": "vin"}')
    for name in columns:
        if fields.get(name) != "string":
            raise JobConfigError(f"columns.{name}: must be a declared string field")

    catalog = parse_catalog(section_of(raw, "catalog"))
    table_raw = section_of(raw, "table")
    table = check_table_name(get_field(table_raw, "name", str, "table", f"{catalog.name}.streaming.events"), catalog, "table.name")
    partition_by = check_partitioning(get_field(table_raw, "partitionBy", list, "table", []), columns, "table.partitionBy")
    dead_raw = section_of(raw, "deadLetter")
    dead_table = check_table_name(get_field(dead_raw, "table", str, "deadLetter", f"{table}_dead_letter"), catalog, "deadLetter.table")
    if dead_table == table:
        raise JobConfigError("deadLetter.table: must differ from table.name")
    chunk_bytes = get_field(dead_raw, "chunkBytes", int, "deadLetter", 768)
    if not 3 <= chunk_bytes <= 49_152 or chunk_bytes % 3:
        raise JobConfigError("deadLetter.chunkBytes: must be a multiple of 3 between 3 and 49152 (base64 of it must fit the API's value limit)")
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


class PreflightError(RuntimeError):
    """Something the job needs is missing or refuses it; the message says what, never a value."""


def check_stream(source: SourceConfig) -> int:
    """The number of open shards of the stream; PreflightError saying what is wrong otherwise."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    client = boto3.client("kinesis", region_name=source.region, **({"endpoint_url": source.endpoint_url} if source.endpoint_url else {}))
    try:
        summary = client.describe_stream_summary(StreamName=source.stream_name)["StreamDescriptionSummary"]
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "ResourceNotFoundException":
            raise PreflightError(f"source.streamName: no stream {source.stream_name} in {source.region}") from None
        if code in ("UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException", "ExpiredTokenException", "AccessDeniedException") or status in (401, 403):
            raise PreflightError(f"the AWS credentials were refused for stream {source.stream_name} ({code or status})") from None
        raise PreflightError(f"cannot describe stream {source.stream_name} ({code})") from None
    except NoCredentialsError:
        raise PreflightError("no AWS credentials found (environment, profile or instance role)") from None
    except EndpointConnectionError:
        raise PreflightError(f"cannot reach the Kinesis endpoint for {source.region}") from None
    except BotoCoreError as error:
        raise PreflightError(f"cannot describe stream {source.stream_name} ({type(error).__name__})") from None
    if summary["StreamStatus"] not in ("ACTIVE", "UPDATING"):
        raise PreflightError(f"stream {source.stream_name} is {summary['StreamStatus']}")
    return int(summary["OpenShardCount"])


def check_api(config: StreamJobConfig) -> None:
    """The API answers, and the key may pseudonymize every context the job uses (a probe value each)."""
    client = PseudonymizationClient(config.api)
    try:
        if not client.ready():
            raise PreflightError(f"api.url: the API at {config.api.url} is not reachable or not ready (GET /readyz)")
        probes = [(context, True) for context in sorted(set(config.columns.values()))] + [(config.dead_letter.context, False)]
        for context, deterministic in probes:
            try:
                client.pseudonymize(context, ["probe"], deterministic=deterministic)
            except ValuesRejected:
                pass  # the context exists and the key may use it; "probe" just does not fit its alphabet
            except PseudonymizationError as error:
                raise PreflightError(f"api: cannot pseudonymize context {context}: {error}") from None
    finally:
        client.close()


def _spark_schema(processor: RecordProcessor) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(processor.output_schema)


def create_tables(spark: Any, config: StreamJobConfig) -> None:
    """Creates the table and the dead-letter table when missing; checks an existing table's columns."""
    columns = {name: SQL_TYPES[kind] for name, kind in config.schema.fields.items()} | {"kinesis_sequence_number": "string", "kinesis_arrival_time": "timestamp"}
    dead_columns = {
        "stream_name": "string",
        "sequence_number": "string",
        "arrival_time": "timestamp",
        "reason_code": "string",
        "reason": "string",
        "record_encrypted": "array<string>",
        "record_bytes": "int",
        "batch_id": "bigint",
        "failed_at": "timestamp",
    }
    metrics_off = {f"write.metadata.metrics.column.{name}": "none" for name in config.columns}
    for table, wanted, properties, partition in (
        (config.table, columns, metrics_off, config.partition_by),
        (config.dead_letter_table, dead_columns, {"write.metadata.metrics.column.record_encrypted": "none"}, ()),
    ):
        spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {table.rsplit('.', 1)[0]}")
        ddl = ", ".join(f"`{name}` {kind}" for name, kind in wanted.items())
        partitioned = f" PARTITIONED BY ({', '.join(partition)})" if partition else ""
        spark.sql(f"CREATE TABLE IF NOT EXISTS {table} ({ddl}) USING iceberg{partitioned} TBLPROPERTIES ({sql_properties({'format-version': '2', **properties})})")
        existing = {f.name: f.dataType.simpleString() for f in spark.table(table).schema.fields}
        for name, kind in wanted.items():
            if name not in existing:
                raise PreflightError(f"table {table} has no column {name}; add it (ALTER TABLE ... ADD COLUMN) or use a new table")
            if existing[name] != kind:
                raise PreflightError(f"table {table}: column {name} is {existing[name]}, the job writes {kind}")
        current = {row["key"]: row["value"] for row in spark.sql(f"SHOW TBLPROPERTIES {table}").collect()}
        missing = {k: v for k, v in properties.items() if current.get(k) != v}
        if missing:
            spark.sql(f"ALTER TABLE {table} SET TBLPROPERTIES ({sql_properties(missing)})")


def _reader(spark: Any, source: SourceConfig) -> Any:
    if source.connector == "aws-kinesis":
        position = source.starting_position if source.starting_position != "AT_TIMESTAMP" else f"AT_TIMESTAMP {source.starting_timestamp}"
        return (
            spark.readStream.format("aws-kinesis")
            .option("kinesis.region", source.region)
            .option("kinesis.streamName", source.stream_name)
            .option("kinesis.consumerType", "GetRecords")
            .option("kinesis.endpointUrl", source.endpoint_url or f"https://kinesis.{source.region}.amazonaws.com")
            .option("kinesis.startingPosition", position)
            .option("kinesis.maxFetchRecordsPerShard", str(source.max_records_per_shard))
        )
    from .kinesis import KinesisDataSource

    spark.dataSource.register(KinesisDataSource)
    reader = (
        spark.readStream.format("kinesis")
        .option("streamName", source.stream_name)
        .option("region", source.region)
        .option("startingPosition", source.starting_position)
        .option("maxRecordsPerShard", str(source.max_records_per_shard))
    )
    if source.endpoint_url:
        reader = reader.option("endpointUrl", source.endpoint_url)
    if source.starting_timestamp:
        reader = reader.option("startingTimestamp", source.starting_timestamp)
    return reader


def emit(event: dict[str, Any]) -> None:
    print(json.dumps(event), flush=True)


class StopRequest:
    """Set by SIGTERM / SIGINT; the main loop stops the query between batches."""

    def __init__(self) -> None:
        self.requested_at: float | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.requested_at is None:
            self.requested_at = time.monotonic()


class MicroBatchWriter:
    """What each micro-batch does (Spark calls it through foreachBatch): parse and pseudonymize once
    (persisted), append the rows and the dead letters, each at most once per batch id, report counts."""

    def __init__(self, config: StreamJobConfig) -> None:
        self.config = config
        self.processor = RecordProcessor(config.schema, config.columns, config.api, config.dead_letter)
        self.output_type = _spark_schema(self.processor)
        self.table_columns = [*config.schema.fields, "kinesis_sequence_number", "kinesis_arrival_time"]
        self.query_id: str | None = None
        self._started = threading.Event()

    def start(self, query_id: str) -> None:
        """The query's id (kept in its checkpoint); batches wait for it, as start() returns after the first may begin."""
        self.query_id = query_id
        self._started.set()

    def __call__(self, batch: Any, batch_id: int) -> None:
        from pyspark.sql import functions as F

        self._started.wait()
        assert self.query_id is not None
        begun = time.monotonic()
        config = self.config
        processed = batch.select("data", "sequenceNumber", "approximateArrivalTimestamp").mapInArrow(self.processor.process_all, self.output_type).persist()
        try:
            ok = F.col("dead_letter_reason_code").isNull()
            counts = {bool(row[0]): int(row[1]) for row in processed.groupBy(ok).count().collect()}
            rows, dead = counts.get(True, 0), counts.get(False, 0)
            appended = {"rows": False, "deadLetters": False}
            if rows:
                appended["rows"] = append_once(processed.where(ok).select(*self.table_columns), config.table, self.query_id, batch_id)
            if dead:
                letters = processed.where(~ok).select(
                    F.lit(config.source.stream_name).alias("stream_name"),
                    F.col("kinesis_sequence_number").alias("sequence_number"),
                    F.col("kinesis_arrival_time").alias("arrival_time"),
                    F.col("dead_letter_reason_code").alias("reason_code"),
                    F.col("dead_letter_reason").alias("reason"),
                    F.col("dead_letter_record").alias("record_encrypted"),
                    F.col("dead_letter_record_bytes").alias("record_bytes"),
                    F.lit(batch_id).cast("bigint").alias("batch_id"),
                    F.current_timestamp().alias("failed_at"),
                )
                appended["deadLetters"] = append_once(letters, config.dead_letter_table, self.query_id, batch_id)
        finally:
            processed.unpersist()
        emit({"event": "batch", "batchId": batch_id, "rows": rows, "deadLetters": dead, "appended": appended, "seconds": round(time.monotonic() - begun, 3)})


def start_query(spark: Any, config: StreamJobConfig, source: Any) -> Any:
    """Creates or checks the tables and starts the query on `source` (a streaming DataFrame of Kinesis rows)."""
    create_tables(spark, config)
    writer = MicroBatchWriter(config)
    query = (
        source.writeStream.queryName(config.query_name)
        .foreachBatch(writer)
        .option("checkpointLocation", config.checkpoint_location)
        .trigger(processingTime=f"{int(config.trigger_seconds * 1000)} milliseconds")
        .start()
    )
    writer.start(str(query.id))
    return query


def run(config: StreamJobConfig, stop: StopRequest | None = None) -> None:
    """Runs until stopped (returns) or failed (raises)."""
    from spark_udfs.jobs.session import build_session

    shards = check_stream(config.source)
    check_api(config)
    spark = build_session(config.catalog, app_name=config.query_name, master=config.master)
    spark.sparkContext.setLogLevel("ERROR")
    try:
        query = start_query(spark, config, _reader(spark, config.source).load())
        emit({"event": "started", "queryId": str(query.id), "stream": config.source.stream_name, "openShards": shards, "table": config.table, "deadLetterTable": config.dead_letter_table})
        while True:
            if query.awaitTermination(0.25):
                break
            if stop is not None and stop.requested_at is not None:
                # Between batches, or after 120 s: stopping mid-batch is safe too (exactly-once), just wasteful.
                if not query.status["isTriggerActive"] or time.monotonic() - stop.requested_at > 120:
                    query.stop()
                    emit({"event": "stopped", "queryId": str(query.id)})
                    break
    finally:
        spark.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Kinesis -> pseudonymize -> Iceberg, exactly once")
    parser.add_argument("--config", required=True, help="job configuration (JSON)")
    parser.add_argument("--master", help="Spark master, e.g. local[2] (spark-submit sets it otherwise)")
    parser.add_argument("--api-key-file", help="overrides api.apiKeyFile")
    args = parser.parse_args(argv)
    try:
        raw = read_json(args.config)
    except JobConfigError as error:
        print(f"config: {error}", file=sys.stderr)
        return 2
    if args.master:
        raw["master"] = args.master
    if args.api_key_file:
        raw.setdefault("api", {})["apiKeyFile"] = args.api_key_file
    try:
        config = parse_config(raw)
    except JobConfigError as error:
        print(f"configuration: {error}", file=sys.stderr)
        return 2
    stop = StopRequest()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        run(config, stop)
    except PreflightError as error:
        print(f"cannot start: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - Spark wraps failures of batches in its own exceptions
        print(f"the streaming job stopped: {root_cause(error)}. The batch in flight was not committed; a restart resumes from the checkpoint.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
