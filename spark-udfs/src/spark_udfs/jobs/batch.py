"""Batch job: read Parquet or CSV, pseudonymize the configured columns through the API, write an Iceberg
(format v2) table, creating it when missing.

    spark-submit spark-udfs/src/spark_udfs/jobs/batch.py --config job.json [--input PATH] [--table NAME] ...
    pseudonymize-batch --config job.json            (the same, as the package's console script)

The configuration (a JSON file, flags override it) is checked before Spark starts, with errors that
name the key: a missing input, an unknown or non-string column, an API that is not reachable. A first
write is an atomic CREATE TABLE AS SELECT, later ones an append; if any task cannot get its
pseudonyms, Spark aborts the write and the table gets no commit.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from ..client import ApiKeySource, ClientConfig, PseudonymizationClient, PseudonymizationError
from .session import CatalogConfig

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){1,2}$")
PARTITION = re.compile(r"^(?:(?:years|months|days|hours)\((\w+)\)|(?:bucket|truncate)\(\d+,\s*(\w+)\)|(\w+))$")


class JobConfigError(ValueError):
    """The job configuration cannot work; the message names the key."""


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


def _get(section: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = None) -> Any:
    value = section.get(key, default)
    # bool is an int in Python: a true/false where a number belongs is still a mistake.
    if value is not None and (not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise JobConfigError(f"{where}.{key}: must be a {names}")
    return value


def parse_config(raw: dict[str, Any]) -> JobConfig:
    """Validates the job configuration, naming the key at fault."""
    source = raw.get("input") or {}
    path = _get(source, "path", str, "input")
    if not path:
        raise JobConfigError("input.path: required")
    fmt = _get(source, "format", str, "input", "parquet")
    if fmt not in ("parquet", "csv"):
        raise JobConfigError("input.format: must be parquet or csv")
    columns = raw.get("columns")
    if not isinstance(columns, dict) or not columns or not all(isinstance(k, str) and isinstance(v, str) for k, v in columns.items()):
        raise JobConfigError('columns: must map column names to contexts, e.g. {"vin": "vin"}')
    api = raw.get("api") or {}
    url = _get(api, "url", str, "api")
    if not url:
        raise JobConfigError("api.url: required")
    key = ApiKeySource(env=_get(api, "apiKeyEnv", str, "api", "PSEUDO_API_KEY"), file=_get(api, "apiKeyFile", str, "api"), secret_id=_get(api, "apiKeySecretId", str, "api"), region=_get(api, "region", str, "api"))
    try:
        client = ClientConfig(
            url=url.rstrip("/"),
            api_key=key,
            batch_size=_get(api, "batchSize", int, "api", 5000),
            concurrency=_get(api, "concurrency", int, "api", 4),
            timeout_seconds=float(_get(api, "timeoutSeconds", (int, float), "api", 30.0)),
            max_retries=_get(api, "maxRetries", int, "api", 8),
        )
    except ValueError as error:
        raise JobConfigError(f"api: {error}") from None
    catalog_raw = raw.get("catalog") or {}
    catalog_type = _get(catalog_raw, "type", str, "catalog", "jdbc")
    if catalog_type not in ("jdbc", "glue"):
        raise JobConfigError("catalog.type: must be jdbc or glue")
    defaults = CatalogConfig()
    catalog = CatalogConfig(
        name=_get(catalog_raw, "name", str, "catalog", "local"),
        type=catalog_type,
        uri=_get(catalog_raw, "uri", str, "catalog", defaults.uri),
        warehouse=_get(catalog_raw, "warehouse", str, "catalog", defaults.warehouse),
    )
    if catalog.type == "glue" and not catalog.warehouse.startswith("s3://"):
        raise JobConfigError("catalog.warehouse: the glue catalog needs an s3:// warehouse")
    table_raw = raw.get("table") or {}
    table = TableConfig(
        name=_get(table_raw, "name", str, "table", f"{catalog.name}.analytics.pseudonymized"),
        partition_by=tuple(_get(table_raw, "partitionBy", list, "table", [])),
        sort_by=tuple(_get(table_raw, "sortBy", list, "table", [])),
        target_file_size_bytes=_get(table_raw, "targetFileSizeBytes", int, "table"),
        object_storage=bool(_get(table_raw, "objectStorage", bool, "table", False)),
    )
    if not TABLE_NAME.match(table.name) or not table.name.startswith(catalog.name + "."):
        raise JobConfigError(f"table.name: must be {catalog.name}.<namespace>.<table>")
    for expression in table.partition_by:
        if not isinstance(expression, str) or not PARTITION.match(expression):
            raise JobConfigError("table.partitionBy: each item must be a column or years/months/days/hours(col), bucket(n, col), truncate(n, col)")
    for column in table.sort_by:
        if not isinstance(column, str) or not IDENTIFIER.match(column):
            raise JobConfigError("table.sortBy: each item must be a column name")
    for column in columns:
        if not IDENTIFIER.match(column):
            raise JobConfigError("columns: column names must be plain identifiers")
    return JobConfig(input_path=path, input_format=fmt, columns=dict(columns), api=client, catalog=catalog, table=table, master=raw.get("master"))


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


def run(config: JobConfig) -> dict[str, Any]:
    """Runs the job; returns a summary without values. Raises on any failure (nothing committed)."""
    from pyspark.sql import SparkSession

    from ..spark import SparkMetrics, check_columns, pseudonymize
    from .session import build_session

    if not config.input_path.startswith(("s3://", "s3a://", "hdfs://")) and not os.path.exists(config.input_path):
        raise JobConfigError(f"input.path: {config.input_path} does not exist")
    probe = PseudonymizationClient(config.api)
    try:
        if not probe.ready():
            raise JobConfigError(f"api.url: the API at {config.api.url} is not reachable or not ready (GET /readyz)")
    finally:
        probe.close()

    started = time.monotonic()
    spark: SparkSession = build_session(config.catalog, master=config.master)
    reader = spark.read.option("header", "true").option("inferSchema", "true") if config.input_format == "csv" else spark.read
    source = reader.format(config.input_format).load(config.input_path)
    check_columns(source, config.columns)
    metrics = SparkMetrics.create(spark)
    pseudonymized = pseudonymize(source, config.columns, config.api, metrics=metrics)

    table = config.table
    namespace = table.name.rsplit(".", 1)[0]
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {namespace}")
    properties = _table_properties(config)
    if spark.catalog.tableExists(table.name):
        current = {row["key"]: row["value"] for row in spark.sql(f"SHOW TBLPROPERTIES {table.name}").collect()}
        missing = {k: v for k, v in properties.items() if k.startswith("write.metadata.metrics.column.") and current.get(k) != v}
        if missing:
            spark.sql(f"ALTER TABLE {table.name} SET TBLPROPERTIES ({_sql_properties(missing)})")
        pseudonymized.writeTo(table.name).append()
        created = False
    else:
        view = f"pseudonymized_{os.getpid()}"
        (pseudonymized.sortWithinPartitions(*table.sort_by) if table.sort_by else pseudonymized).createOrReplaceTempView(view)
        partitioned = f" PARTITIONED BY ({', '.join(table.partition_by)})" if table.partition_by else ""
        # One atomic commit: the table exists only if the data was written.
        spark.sql(f"CREATE TABLE {table.name} USING iceberg{partitioned} TBLPROPERTIES ({_sql_properties(properties)}) AS SELECT * FROM {view}")
        if table.sort_by:
            spark.sql(f"ALTER TABLE {table.name} WRITE ORDERED BY {', '.join(table.sort_by)}")
        created = True
    snapshot = spark.sql(f"SELECT snapshot_id FROM {table.name}.snapshots ORDER BY committed_at DESC LIMIT 1").collect()[0][0]
    return {
        "table": table.name,
        "created": created,
        "snapshotId": snapshot,
        "rows": metrics.rows.value,
        "uniqueRatio": round(metrics.unique_ratio(), 4),
        "requests": metrics.requests.value,
        "retries": metrics.retries.value,
        "seconds": round(time.monotonic() - started, 1),
    }


def _sql_properties(properties: dict[str, str]) -> str:
    return ", ".join(f"'{k}'='{v}'" for k, v in properties.items())


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
        with open(args.config, encoding="utf-8") as handle:
            raw: dict[str, Any] = json.load(handle)
    except (OSError, json.JSONDecodeError):
        print(f"config: cannot read {args.config} as JSON", file=sys.stderr)
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
        summary = run(parse_config(raw))
    except (JobConfigError, ValueError) as error:
        print(f"configuration: {error}", file=sys.stderr)
        return 2
    except PseudonymizationError as error:
        print(f"the job failed and committed nothing: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - Spark wraps task failures in Py4J/Spark exceptions
        reason = _root_cause(error)
        print(f"the job failed and committed nothing: {reason}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


def _root_cause(error: BaseException) -> str:
    """Spark's task-failure text names our PseudonymizationError when a task gave up; keep just that line."""
    for line in reversed(str(error).splitlines()):
        # The traceback's last line for our error: "spark_udfs.client.PseudonymizationError: <message>".
        marker = "PseudonymizationError: "
        if marker in line:
            return line[line.index(marker) + len(marker) :].strip()[:500]
    return type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
