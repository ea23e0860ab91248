"""Batch job: read Parquet or CSV, pseudonymize the configured columns through the API, write an Iceberg
(format v2) table, creating it when missing.

    spark-submit spark-udfs/src/spark_udfs/jobs/batch.py --config job.json [--input PATH] [--table NAME] ...
    pseudonymize-batch --config job.json            (the same, as the package's console script)

The configuration (a JSON file, flags override it) is checked before Spark starts, with errors that
name the key: a missing input, an unreadable API key file, an unknown or non-string column, an API that is
not reachable. Spark's Python workers run the job's own interpreter unless PYSPARK_PYTHON says otherwise. A first
write is an atomic CREATE TABLE AS SELECT, later ones an append; if any task cannot get its
pseudonyms, Spark aborts the write and the table gets no commit.

A row whose subject's erasure was filed (the API withholds its pseudonym) is left out and counted
(`rowsSuppressed` in the summary), or, with `"suppressed": "fail"`, fails the job before anything is committed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..client import ClientConfig, PseudonymizationClient, PseudonymizationError
from ..iceberg import ensure_table_properties, sql_properties, table_properties
from ..spark import SuppressedPolicy
from .config import (
    IDENTIFIER,
    JobConfigError,
    Section,
    check_api_key,
    check_partitioning,
    check_table_name,
    parse_api,
    parse_catalog,
    parse_suppressed,
    read_json,
)
from .failures import root_cause
from .progress import JobProgress
from .session import CatalogConfig

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


@dataclass(frozen=True)
class TableConfig:
    name: str
    partition_by: tuple[str, ...] = ()
    sort_by: tuple[str, ...] = ()
    target_file_size_bytes: int | None = None
    object_storage: bool = False


@dataclass(frozen=True)
class JobConfig:
    input_path: str
    input_format: Literal["parquet", "csv"]
    columns: dict[str, str]
    api: ClientConfig
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    table: TableConfig = field(default_factory=lambda: TableConfig("local.analytics.pseudonymized"))
    master: str | None = None
    #: A row whose subject's erasure was filed: "drop" it (counted in the summary) or "fail" the job.
    suppressed: SuppressedPolicy = "drop"


def parse_config(raw: Mapping[str, object]) -> JobConfig:
    """Validates the job configuration, naming the key at fault."""
    config = Section(raw)
    source = config.section("input")
    path = source.required_text("path")
    formats: dict[str, Literal["parquet", "csv"]] = {"parquet": "parquet", "csv": "csv"}
    input_format = formats.get(source.text("format", "parquet"))
    if input_format is None:
        raise JobConfigError("input.format: must be parquet or csv")
    columns = config.text_map("columns", 'must map column names to contexts, e.g. {"vin": "vin"}')
    for column in columns:
        if not IDENTIFIER.match(column):
            raise JobConfigError("columns: column names must be plain identifiers")
    client = parse_api(config.section("api").values)
    catalog = parse_catalog(config.section("catalog").values)
    table_section = config.section("table")
    table = TableConfig(
        name=check_table_name(
            table_section.text("name", f"{catalog.name}.analytics.pseudonymized"), catalog, "table.name"
        ),
        partition_by=check_partitioning(table_section.values.get("partitionBy", []), columns, "table.partitionBy"),
        sort_by=tuple(table_section.text_list("sortBy", "each item must be a column name")),
        target_file_size_bytes=table_section.optional_integer("targetFileSizeBytes"),
        object_storage=table_section.flag("objectStorage", False),
    )
    for column in table.sort_by:
        if not IDENTIFIER.match(column):
            raise JobConfigError("table.sortBy: each item must be a column name")
    return JobConfig(
        input_path=path,
        input_format=input_format,
        columns=columns,
        api=client,
        catalog=catalog,
        table=table,
        master=config.optional_text("master"),
        suppressed=parse_suppressed(config),
    )


def suppressed_note(rows: int) -> str:
    """The human line for rows left out by suppression (a count, never values)."""
    return (
        f"{rows} row(s) not written: their subject's erasure was filed, so the API withheld their pseudonyms "
        '(set "suppressed": "fail" to fail instead)'
    )


def _table_properties(config: JobConfig) -> dict[str, str]:
    properties = {"format-version": "2"}
    if config.table.target_file_size_bytes:
        properties["write.target-file-size-bytes"] = str(config.table.target_file_size_bytes)
    if config.table.object_storage:
        properties["write.object-storage.enabled"] = "true"
    # No min/max statistics of pseudonyms in manifests: erasure must not have to chase them there.
    for column in config.columns:
        properties[f"write.metadata.metrics.column.{column}"] = "none"
    return properties


def _pseudonymized_once(pseudonymized: DataFrame, properties: Mapping[str, str]) -> DataFrame:
    """The frame to append. A table with a sort order (or range distribution) makes Spark sample the input before
    the sorted write, which ran the pseudonymizing step twice: twice the requests, and every row counted twice.
    Then the pseudonyms are computed once into Spark's cache (memory, spilling to local disk) and the write reads
    them from there; the caller unpersists it after the write."""
    if "sort-order" not in properties and properties.get("write.distribution-mode") != "range":
        return pseudonymized
    from pyspark import StorageLevel

    cached = pseudonymized.persist(StorageLevel.MEMORY_AND_DISK)
    cached.count()  # fills the cache: one pass through the API, counted once
    return cached


def run(config: JobConfig, progress: JobProgress | None = None) -> dict[str, Any]:
    """Runs the job; returns a summary without values. Raises on any failure (nothing committed)."""
    from pyspark.sql import SparkSession

    from ..spark import SparkMetrics, check_columns, pseudonymize
    from .session import build_session

    if not config.input_path.startswith(("s3://", "s3a://", "hdfs://")) and not os.path.exists(config.input_path):
        raise JobConfigError(f"input.path: {config.input_path} does not exist")
    check_api_key(config.api)
    probe = PseudonymizationClient(config.api)
    try:
        if not probe.ready():
            raise JobConfigError(f"api.url: the API at {config.api.url} is not reachable or not ready (GET /readyz)")
    finally:
        probe.close()

    started = time.monotonic()
    spark: SparkSession = build_session(config.catalog, master=config.master)
    reader = (
        spark.read.option("header", "true").option("inferSchema", "true")
        if config.input_format == "csv"
        else spark.read
    )
    source = reader.format(config.input_format).load(config.input_path)
    check_columns(source, config.columns)
    metrics = SparkMetrics.create(spark)
    if progress is not None:
        progress.rows = lambda: metrics.rows.value
    pseudonymized = pseudonymize(source, config.columns, config.api, metrics=metrics, suppressed=config.suppressed)

    table = config.table
    namespace = table.name.rsplit(".", 1)[0]
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {namespace}")
    properties = _table_properties(config)
    if spark.catalog.tableExists(table.name):
        # An existing table keeps its other settings; only the metrics switch for pseudonymized columns is required.
        ensure_table_properties(
            spark, table.name, {k: v for k, v in properties.items() if k.startswith("write.metadata.metrics.column.")}
        )
        once = _pseudonymized_once(pseudonymized, table_properties(spark, table.name))
        try:
            once.writeTo(table.name).append()
        finally:
            if once is not pseudonymized:
                once.unpersist()
        created = False
    else:
        view = f"pseudonymized_{os.getpid()}"
        (
            pseudonymized.sortWithinPartitions(*table.sort_by) if table.sort_by else pseudonymized
        ).createOrReplaceTempView(view)
        partitioned = f" PARTITIONED BY ({', '.join(table.partition_by)})" if table.partition_by else ""
        # One atomic commit: the table exists only if the data was written.
        spark.sql(
            f"CREATE TABLE {table.name} USING iceberg{partitioned} "
            f"TBLPROPERTIES ({sql_properties(properties)}) AS SELECT * FROM {view}"
        )
        if table.sort_by:
            spark.sql(f"ALTER TABLE {table.name} WRITE ORDERED BY {', '.join(table.sort_by)}")
        created = True
    snapshot = spark.sql(
        f"SELECT snapshot_id FROM {table.name}.snapshots ORDER BY committed_at DESC LIMIT 1"
    ).collect()[0][0]
    return {
        "table": table.name,
        "created": created,
        # A decimal string, as in the erasure certificate: Iceberg ids exceed 2^53 and JSON readers round numbers.
        "snapshotId": str(snapshot),
        # Rows written; rowsSuppressed were read but left out (their subject's erasure was filed).
        "rows": metrics.rows.value - metrics.suppressed_rows.value,
        "rowsSuppressed": metrics.suppressed_rows.value,
        "uniqueRatio": round(metrics.unique_ratio(), 4),
        "requests": metrics.requests.value,
        "retries": metrics.retries.value,
        "seconds": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Pseudonymize columns of Parquet/CSV data into an Iceberg table")
    parser.add_argument("--config", required=True, help="job configuration (JSON)")
    parser.add_argument("--input", help="overrides input.path")
    parser.add_argument("--format", choices=["parquet", "csv"], help="overrides input.format")
    parser.add_argument("--table", help="overrides table.name")
    parser.add_argument("--api-url", help="overrides api.url")
    parser.add_argument("--api-key-file", help="overrides api.apiKeyFile")
    parser.add_argument("--master", help="Spark master, e.g. local[2] (spark-submit sets it otherwise)")
    args = parser.parse_args(argv)
    try:
        raw = read_json(args.config)
    except JobConfigError as error:
        print(f"config: {error}", file=sys.stderr)
        return 2
    if args.input:
        raw.setdefault("input", {})["path"] = args.input
    if args.format:
        raw.setdefault("input", {})["format"] = args.format
    if args.table:
        raw.setdefault("table", {})["name"] = args.table
    if args.api_url:
        raw.setdefault("api", {})["url"] = args.api_url
    if args.api_key_file:
        raw.setdefault("api", {})["apiKeyFile"] = args.api_key_file
    if args.master:
        raw["master"] = args.master
    try:
        with JobProgress("batch") as progress:  # stages and rows on stderr while Spark works
            summary = run(parse_config(raw), progress)
    except (JobConfigError, ValueError) as error:
        print(f"configuration: {error}", file=sys.stderr)
        return 2
    except PseudonymizationError as error:
        print(f"the job failed and committed nothing: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        reason = root_cause(error)
        print(f"the job failed and committed nothing: {reason}", file=sys.stderr)
        return 1
    if summary["rowsSuppressed"]:
        print(suppressed_note(summary["rowsSuppressed"]), file=sys.stderr)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
