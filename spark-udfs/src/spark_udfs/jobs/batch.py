"""Batch job: read Parquet, CSV or an Iceberg table, pseudonymize (or, with `"mode": "reidentify"`, reidentify) the
configured columns through the API, write an Iceberg (format v2) table, creating it when missing.

    spark-submit spark-udfs/src/spark_udfs/jobs/batch.py --config job.json [--input PATH] [--table NAME] ...
    pseudonymize-batch --config job.json            (the same, as the package's console script)

The configuration (a JSON file, flags override it) is checked before Spark starts, with errors that
name the key: a missing input, an unreadable API key file, an unknown or non-string column, an API that is
not reachable. Spark's Python workers run the job's own interpreter unless PYSPARK_PYTHON says otherwise. A first
write is an atomic CREATE TABLE AS SELECT, later ones an append; if any task cannot get its
pseudonyms, Spark aborts the write and the table gets no commit.

Once Spark has read the input's schema, and before anything is created or written, every configured column is
checked against it (the columns to transform, renames, sortBy, partition transforms' source columns and whether
the transform fits the column's type), exit 2 naming the key: names and types are not personal data, values are.

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
    partition_source,
    read_json,
)
from .failures import root_cause
from .progress import JobProgress
from .session import CatalogConfig

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

Mode = Literal["pseudonymize", "reidentify"]
MODES: tuple[Mode, ...] = ("pseudonymize", "reidentify")


@dataclass(frozen=True)
class TableConfig:
    name: str
    partition_by: tuple[str, ...] = ()
    sort_by: tuple[str, ...] = ()
    target_file_size_bytes: int | None = None
    object_storage: bool = False


@dataclass(frozen=True)
class JobConfig:
    #: A Parquet or CSV path; empty when the input is an Iceberg table (input_table).
    input_path: str
    input_format: Literal["parquet", "csv"]
    #: Input column -> context.
    columns: dict[str, str]
    api: ClientConfig
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    table: TableConfig = field(default_factory=lambda: TableConfig("local.analytics.pseudonymized"))
    master: str | None = None
    #: A row whose subject's erasure was filed: "drop" it (counted in the summary) or "fail" the job.
    suppressed: SuppressedPolicy = "drop"
    #: pseudonymize, or reidentify (a key with the reidentify role; the API audits every request).
    mode: Mode = "pseudonymize"
    #: False: randomized pseudonyms (a fresh one per occurrence), pseudonymize mode only.
    deterministic: bool = True
    #: Input column -> output column name, for the transformed columns given `"as"`.
    rename: dict[str, str] = field(default_factory=dict)
    #: Spread the input over this many partitions (Spark tasks) before the API calls; None keeps the input's.
    repartition: int | None = None
    #: An Iceberg table to read instead of input.path (e.g. a pseudonymized table to reidentify).
    input_table: str | None = None

    def output_name(self, column: str) -> str:
        return self.rename.get(column, column)


def parse_columns(config: Section) -> tuple[dict[str, str], dict[str, str]]:
    """`columns`: each input column to its context, `{"vin": "vin"}`, or with an output name,
    `{"vin": {"context": "vin", "as": "s_vin"}}`. Returns (column -> context, column -> output name)."""
    raw = config.values.get("columns")
    rule = 'must map column names to contexts, e.g. {"vin": "vin"} or {"vin": {"context": "vin", "as": "s_vin"}}'
    if not isinstance(raw, dict) or not raw:
        raise JobConfigError(f"columns: {rule}")
    columns: dict[str, str] = {}
    rename: dict[str, str] = {}
    for column, value in raw.items():
        if not isinstance(column, str) or not IDENTIFIER.match(column):
            raise JobConfigError("columns: column names must be plain identifiers")
        if isinstance(value, str):
            columns[column] = value
            continue
        if not isinstance(value, dict):
            raise JobConfigError(f"columns.{column}: {rule}")
        entry = Section(value, f"columns.{column}")
        if set(value) - {"context", "as"}:
            raise JobConfigError(f"columns.{column}: takes context and as only")
        columns[column] = entry.required_text("context", "the context of the column's values")
        output = entry.optional_text("as")
        if output is not None:
            if not IDENTIFIER.match(output):
                raise JobConfigError(f"columns.{column}.as: must be a plain identifier")
            rename[column] = output
    outputs = [rename.get(column, column) for column in columns]
    for column in columns:
        if outputs.count(rename.get(column, column)) > 1:
            raise JobConfigError(f"columns.{column}.as: two columns would be written as {rename.get(column, column)}")
    return columns, rename


def parse_config(raw: Mapping[str, object]) -> JobConfig:
    """Validates the job configuration, naming the key at fault."""
    config = Section(raw)
    modes: dict[str, Mode] = {mode: mode for mode in MODES}
    mode = modes.get(config.text("mode", "pseudonymize"))
    if mode is None:
        raise JobConfigError(f"mode: must be {' or '.join(MODES)}")
    source = config.section("input")
    input_table = source.optional_text("table")
    if input_table is not None:
        if source.values.get("path") is not None:
            raise JobConfigError("input: give path or table, not both")
        path = ""
    else:
        path = source.required_text("path", "a Parquet or CSV file or folder, or input.table for an Iceberg table")
    client = parse_api(config.section("api").values)
    catalog = parse_catalog(config.section("catalog").values)
    if input_table is not None:
        check_table_name(input_table, catalog, "input.table")
    formats: dict[str, Literal["parquet", "csv"]] = {"parquet": "parquet", "csv": "csv"}
    input_format = formats.get(source.text("format", "parquet"))
    if input_format is None:
        raise JobConfigError("input.format: must be parquet or csv")
    columns, rename = parse_columns(config)
    if mode == "reidentify" and config.values.get("deterministic") is not None:
        raise JobConfigError("deterministic: applies to mode pseudonymize only (reidentify reads both kinds)")
    deterministic = config.flag("deterministic", True)
    repartition = config.optional_integer("repartition")
    if repartition is not None and repartition < 1:
        raise JobConfigError("repartition: must be a number of partitions, 1 or more")
    table_section = config.section("table")
    table = TableConfig(
        name=check_table_name(
            table_section.text("name", f"{catalog.name}.analytics.pseudonymized"), catalog, "table.name"
        ),
        partition_by=check_partitioning(
            table_section.values.get("partitionBy", []), [*columns, *rename.values()], "table.partitionBy"
        ),
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
        mode=mode,
        deterministic=deterministic,
        rename=rename,
        repartition=repartition,
        input_table=input_table,
    )


_DATES = ("DateType", "TimestampType", "TimestampNTZType")
_INTEGERS = ("ByteType", "ShortType", "IntegerType", "LongType", "DecimalType")
#: Spark types each partition transform takes (Iceberg's rules: a day of a string is "Invalid source type").
_TRANSFORM_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "years": ("date or timestamp", _DATES),
    "months": ("date or timestamp", _DATES),
    "days": ("date or timestamp", _DATES),
    "hours": ("timestamp", _DATES[1:]),
    "bucket": (
        "int, long, decimal, date, timestamp, string or binary",
        (*_INTEGERS, *_DATES, "StringType", "BinaryType"),
    ),
    "truncate": ("int, long, decimal, string or binary", (*_INTEGERS, "StringType", "BinaryType")),
}


def check_against_schema(schema: StructType, config: JobConfig) -> None:
    """Every column the configuration names exists where it must, with a type that fits, before anything is
    created or written; JobConfigError names the key. Names and types only: never a value."""
    from pyspark.sql.types import ArrayType, MapType, StringType, StructType

    fields = {f.name: f.dataType for f in schema.fields}
    listed = ", ".join(sorted(fields))
    for column in config.columns:
        if column not in fields:
            raise JobConfigError(f"columns.{column}: the input has no column {column} (it has: {listed})")
        if not isinstance(fields[column], StringType):
            raise JobConfigError(
                f"columns.{column}: {column} is {fields[column].simpleString()}, not string: cast it first"
            )
    for column, output in config.rename.items():
        if output in fields and output not in config.rename:
            raise JobConfigError(f"columns.{column}.as: the input already has a column {output}")
    output_fields = {config.output_name(name): kind for name, kind in fields.items()}
    written = ", ".join(sorted(output_fields))
    for index, column in enumerate(config.table.sort_by):
        if column not in output_fields:
            raise JobConfigError(f"table.sortBy[{index}]: the output has no column {column} (it has: {written})")
    for index, expression in enumerate(config.table.partition_by):
        key = f"table.partitionBy[{index}]"
        transform, column = partition_source(expression)
        if column not in output_fields:
            raise JobConfigError(f"{key}: {expression}: the output has no column {column} (it has: {written})")
        kind = output_fields[column]
        if transform == "identity":
            if isinstance(kind, (ArrayType, MapType, StructType)):
                raise JobConfigError(
                    f"{key}: {expression} needs a column of a primitive type; {column} is {kind.simpleString()}"
                )
            continue
        wanted, type_names = _TRANSFORM_TYPES[transform]
        if type(kind).__name__ not in type_names:
            raise JobConfigError(f"{key}: {expression} needs a {wanted} column; {column} is {kind.simpleString()}")


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
        properties[f"write.metadata.metrics.column.{config.output_name(column)}"] = "none"
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

    from ..spark import SparkMetrics, pseudonymize, reidentify
    from .session import build_session

    if (
        config.input_table is None
        and not config.input_path.startswith(("s3://", "s3a://", "hdfs://"))
        and not os.path.exists(config.input_path)
    ):
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
    if config.input_table is not None:
        if not spark.catalog.tableExists(config.input_table):
            raise JobConfigError(f"input.table: {config.input_table} does not exist")
        source = spark.table(config.input_table)
    else:
        reader = (
            spark.read.option("header", "true").option("inferSchema", "true")
            if config.input_format == "csv"
            else spark.read
        )
        source = reader.format(config.input_format).load(config.input_path)
    # Before anything is created or written: a missing column or a transform on the wrong type is a setting to fix.
    check_against_schema(source.schema, config)
    if config.repartition is not None:
        source = source.repartition(config.repartition)
    metrics = SparkMetrics.create(spark)
    if progress is not None:
        progress.rows = lambda: metrics.rows.value
    if config.mode == "reidentify":
        transformed = reidentify(source, config.columns, config.api, metrics=metrics)
    else:
        transformed = pseudonymize(
            source,
            config.columns,
            config.api,
            deterministic=config.deterministic,
            metrics=metrics,
            suppressed=config.suppressed,
        )
    # Renamed after the transform: the API calls read the input's columns, the table gets the output names.
    pseudonymized = transformed.withColumnsRenamed(config.rename) if config.rename else transformed

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
        "mode": config.mode,
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
    parser = argparse.ArgumentParser(
        description="Pseudonymize (or reidentify) columns of Parquet/CSV data or an Iceberg table into an Iceberg table"
    )
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
