"""The micro-batch loop: the streaming source (this package's Kinesis source or the aws-kinesis connector),
each batch parsed, pseudonymized and appended at most once per batch id (spark_udfs.jobs.markers), progress
as one JSON line per batch (counts and timings, never values), and a stop between batches on request.

Records whose subject's erasure was filed are counted (`rowsSuppressed`) and go to neither table; with
`"suppressed": "fail"` the batch fails before anything of it is appended, and the job stops."""

from __future__ import annotations

import json
import threading
import time
from types import FrameType
from typing import Any

from spark_udfs import SubjectSuppressed
from spark_udfs.iceberg_ops import refreshed, retry_on_conflict
from spark_udfs.jobs.markers import append_once

from .config import SourceConfig, StreamJobConfig
from .preflight import check_api, check_stream
from .records import SUBJECT_ERASED, RecordProcessor
from .tables import create_tables

#: Appends of one batch tried this often when a concurrent writer (an erasure, maintenance or re-keying run)
#: deleted files of the table state the session had loaded, or won a commit race.
APPEND_ATTEMPTS = 6


def _spark_schema(processor: RecordProcessor) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(processor.output_schema)


def source_reader(spark: Any, source: SourceConfig) -> Any:
    if source.connector == "aws-kinesis":
        position = (
            source.starting_position
            if source.starting_position != "AT_TIMESTAMP"
            else f"AT_TIMESTAMP {source.starting_timestamp}"
        )
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
        """The query's id (kept in its checkpoint); batches wait for it, as start() returns after the first may
        begin."""
        self.query_id = query_id
        self._started.set()

    def __call__(self, batch: Any, batch_id: int) -> None:
        from pyspark.sql import functions as F

        self._started.wait()
        assert self.query_id is not None
        begun = time.monotonic()
        config = self.config
        processed = (
            batch.select("data", "sequenceNumber", "approximateArrivalTimestamp")
            .mapInArrow(self.processor.process_all, self.output_type)
            .persist()
        )
        try:
            code = F.col("dead_letter_reason_code")
            ok = code.isNull()
            withheld = code == F.lit(SUBJECT_ERASED)
            outcome = F.when(ok, "row").when(withheld, "suppressed").otherwise("dead")
            counts = {str(row[0]): int(row[1]) for row in processed.groupBy(outcome).count().collect()}
            rows, dead, suppressed = counts.get("row", 0), counts.get("dead", 0), counts.get("suppressed", 0)
            if suppressed and config.suppressed == "fail":
                raise SubjectSuppressed(
                    f"{suppressed} record(s) of batch {batch_id} belong to a subject whose erasure was filed, and the "
                    "suppressed setting is fail: nothing of the batch was appended",
                    frozenset(),
                )
            appended = {"rows": False, "deadLetters": False}
            retried: dict[str, Any] = {}
            spark = processed.sparkSession
            query_id = self.query_id

            def appending(table: str, frame: Any) -> bool:
                # An erasure or maintenance run expires snapshots and deletes old metadata.json files: a table
                # state the session loaded before can name files that are gone (FileNotFoundException). The table
                # is read afresh before each attempt; append_once checks the batch's marker first, so an attempt
                # after one that committed appends nothing twice.
                return retry_on_conflict(
                    refreshed(spark, table, lambda: append_once(frame, table, query_id, batch_id)),
                    APPEND_ATTEMPTS,
                    retried,
                    stale_reads=True,
                )

            if rows:
                appended["rows"] = appending(config.table, processed.where(ok).select(*self.table_columns))
            if dead:
                # Withheld records are never dead letters: what is left of them is the erased subject's data.
                letters = processed.where(~ok & ~withheld).select(
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
                appended["deadLetters"] = appending(config.dead_letter_table, letters)
        finally:
            processed.unpersist()
        emit(
            {
                "event": "batch",
                "batchId": batch_id,
                "rows": rows,
                "deadLetters": dead,
                "rowsSuppressed": suppressed,
                "appended": appended,
                "appendsRetried": retried.get("commitConflictsRetried", 0),
                "seconds": round(time.monotonic() - begun, 3),
            }
        )


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


def stop_now(stop: StopRequest | None, query: Any) -> bool:
    """A stop was asked for, and the query is between batches or has had 120 s to finish the one in flight."""
    if stop is None or stop.requested_at is None:
        return False
    return not query.status["isTriggerActive"] or time.monotonic() - stop.requested_at > 120


def run(config: StreamJobConfig, stop: StopRequest | None = None) -> None:
    """Runs until stopped (returns) or failed (raises)."""
    from spark_udfs.jobs.progress import step
    from spark_udfs.jobs.session import build_session

    # Start-up takes minutes before the first batch line: say which step it is in (stderr; names, no values).
    step("stream-consumer", f"checking the stream {config.source.stream_name}")
    shards = check_stream(config.source)
    step("stream-consumer", "checking the API (readiness, a probe per context)")
    check_api(config)
    step("stream-consumer", f"starting Spark ({config.master or 'master from spark-submit'})")
    spark = build_session(config.catalog, app_name=config.query_name, master=config.master)
    spark.sparkContext.setLogLevel("ERROR")
    try:
        step("stream-consumer", f"creating or checking {config.table} and {config.dead_letter_table}")
        query = start_query(spark, config, source_reader(spark, config.source).load())
        step("stream-consumer", f"running: a batch every {config.trigger_seconds:g} s, one JSON line each on stdout")
        emit(
            {
                "event": "started",
                "queryId": str(query.id),
                "stream": config.source.stream_name,
                "openShards": shards,
                "table": config.table,
                "deadLetterTable": config.dead_letter_table,
                "suppressed": config.suppressed,
            }
        )
        while True:
            if query.awaitTermination(0.25):
                break
            # Between batches, or after 120 s: stopping mid-batch is safe too (exactly-once), just wasteful.
            if stop_now(stop, query):
                query.stop()
                emit({"event": "stopped", "queryId": str(query.id)})
                break
    finally:
        spark.stop()
