"""The batch job on real local Spark and Iceberg (JDBC catalog on SQLite) against the real API."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

from spark_udfs.erasure.scan import scan_table_files
from spark_udfs.jobs.batch import JobConfigError, main, parse_config, run
from spark_udfs.jobs.session import CatalogConfig
from test_support.servers import FaultProxy

from .conftest import Api

VINS = [f"SENTINELVIN{i:06d}" for i in range(400)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("input")
    n = 12_000
    start = dt.datetime(2026, 1, 1)
    table = pa.table(
        {
            "dept_id": pa.array([i % 50 for i in range(n)], pa.int32()),
            "vin": pa.array([None if i % 101 == 0 else VINS[i % len(VINS)] for i in range(n)]),
            "customer_id": pa.array([f"C{i % 977:05d}" for i in range(n)]),
            "example_ts": pa.array([start + dt.timedelta(minutes=7 * i) for i in range(n)], pa.timestamp("us")),
        }
    )
    path = folder / "vehicles.parquet"
    pq.write_table(table, path)
    return path


def job(
    api: Api,
    warehouse: CatalogConfig,
    dataset: Path,
    table: str,
    url: str | None = None,
    api_options: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "input": {"path": str(dataset), "format": "parquet"},
        "columns": {"vin": "vin"},
        "api": {
            "url": url or api.url,
            "apiKeyFile": api.pseudonymize_key_file,
            "batchSize": 100,
            "concurrency": 2,
            "maxRetries": 8,
            **(api_options or {}),
        },
        "catalog": {"name": warehouse.name, "type": "jdbc", "uri": warehouse.uri, "warehouse": warehouse.warehouse},
        "table": {
            "name": f"local.analytics.{table}",
            "partitionBy": ["days(example_ts)"],
            "sortBy": ["example_ts", "customer_id"],
            "targetFileSizeBytes": 64 * 1024 * 1024,
            **extra.pop("table", {}),
        },
        "master": "local[2]",
        **extra,
    }


def table_files(warehouse: CatalogConfig, table: str) -> list[Path]:
    return [p for p in Path(warehouse.warehouse, "analytics", table).rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def vehicles(spark: SparkSession, api: Api, warehouse: CatalogConfig, dataset: Path) -> dict[str, Any]:
    """The job run once on the dataset into local.analytics.vehicles (read, never changed, by several tests);
    returns its summary."""
    return run(parse_config(job(api, warehouse, dataset, "vehicles")))


def test_writes_an_iceberg_v2_table_with_pseudonyms_only(
    spark: SparkSession, api: Api, warehouse: CatalogConfig, dataset: Path, vehicles: dict[str, Any]
) -> None:
    summary = vehicles
    assert summary["created"] is True and summary["rows"] == 12_000
    assert 0 < summary["uniqueRatio"] < 0.2
    written = spark.table("local.analytics.vehicles")
    assert written.count() == 12_000
    source = spark.read.parquet(str(dataset))
    expected = dict(
        zip(VINS, api.call("/v1/pseudonymize", {"context": "vin", "values": VINS})["pseudonyms"], strict=True)
    )  # type: ignore[arg-type]
    joined = {(r.customer_id, r.example_ts): r.vin for r in source.collect()}
    for row in written.collect():
        original = joined[(row.customer_id, row.example_ts)]
        assert row.vin == (None if original is None else expected[original])
    assert written.filter("vin IS NULL").count() == source.filter("vin IS NULL").count() > 0

    properties = {r["key"]: r["value"] for r in spark.sql("SHOW TBLPROPERTIES local.analytics.vehicles").collect()}
    assert properties["format-version"] == "2"
    assert properties["write.metadata.metrics.column.vin"] == "none"
    assert properties["write.target-file-size-bytes"] == str(64 * 1024 * 1024)
    assert "days(example_ts)" in spark.sql("DESCRIBE TABLE EXTENDED local.analytics.vehicles").toPandas().to_string()
    assert "example_ts" in properties.get("sort-order", "")

    files = table_files(warehouse, "vehicles")
    assert any(f.suffix == ".parquet" for f in files) and any(f.name.endswith(".metadata.json") for f in files)
    for path in files:
        content = path.read_bytes()
        assert b"SENTINELVIN" not in content, f"plaintext identifier in {path.name}"
    # Raw bytes prove little on zstd pages: decode every file too (the search finds the pseudonyms, not the VINs).
    location = str(Path(warehouse.warehouse) / "analytics" / "vehicles")
    assert scan_table_files(location, VINS).matches == {}
    assert any(name.endswith(".parquet") for name in scan_table_files(location, list(expected.values())).matches)


def test_pyiceberg_reads_the_table_the_job_wrote(
    spark: SparkSession, api: Api, warehouse: CatalogConfig, dataset: Path, vehicles: dict[str, Any]
) -> None:
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog("local", uri=f"sqlite:///{warehouse.uri}", warehouse=f"file://{warehouse.warehouse}")
    arrow = catalog.load_table("analytics.vehicles").scan().to_arrow()
    assert arrow.num_rows == 12_000
    assert sorted(arrow.column("vin").drop_null().to_pylist()) == sorted(
        r.vin for r in spark.table("local.analytics.vehicles").collect() if r.vin
    )


def test_appends_to_an_existing_table_as_a_new_snapshot(
    spark: SparkSession, api: Api, warehouse: CatalogConfig, dataset: Path
) -> None:
    first = run(parse_config(job(api, warehouse, dataset, "appended")))
    second = run(parse_config(job(api, warehouse, dataset, "appended")))
    assert second["created"] is False and second["snapshotId"] != first["snapshotId"]
    # 64-bit ids travel as decimal strings, every digit the catalog's.
    latest = spark.sql("SELECT snapshot_id FROM local.analytics.appended.snapshots ORDER BY committed_at DESC LIMIT 1")
    assert second["snapshotId"] == str(latest.collect()[0][0])
    assert spark.table("local.analytics.appended").count() == 24_000


def test_survives_errors_throttling_and_dropped_connections_with_identical_output(
    spark: SparkSession, api: Api, warehouse: CatalogConfig, dataset: Path, vehicles: dict[str, Any]
) -> None:
    with FaultProxy(api.url, errors=0.15, throttles=0.1, drops=0.1) as proxy:
        summary = run(
            parse_config(job(api, warehouse, dataset, "faulty", url=proxy.url, api_options={"batchSize": 50}))
        )
    assert proxy.counts["503"] > 0 and proxy.counts["429"] > 0 and proxy.counts["dropped"] > 0
    assert summary["retries"] > 0
    clean = sorted(map(tuple, spark.table("local.analytics.vehicles").collect()), key=str)
    faulty = sorted(map(tuple, spark.table("local.analytics.faulty").collect()), key=str)
    assert faulty == clean


def test_api_down_fails_clearly_and_commits_nothing(
    spark: SparkSession,
    api: Api,
    warehouse: CatalogConfig,
    dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "job.json"
    config.write_text(json.dumps(job(api, warehouse, dataset, "never_down", url="http://127.0.0.1:9")))
    assert main(["--config", str(config)]) == 2
    assert "api.url: the API at http://127.0.0.1:9 is not reachable or not ready" in capsys.readouterr().err
    assert not spark.catalog.tableExists("local.analytics.never_down")


def test_api_failing_during_the_job_fails_it_and_commits_nothing(
    spark: SparkSession,
    api: Api,
    warehouse: CatalogConfig,
    dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with FaultProxy(api.url, fail_all_posts=True) as proxy:
        config = tmp_path / "job.json"
        config.write_text(
            json.dumps(job(api, warehouse, dataset, "never_failing", url=proxy.url, api_options={"maxRetries": 2}))
        )
        assert main(["--config", str(config)]) == 1
    error = capsys.readouterr().err
    assert "the job failed and committed nothing" in error and "gave up after 3 attempts" in error
    assert "SENTINELVIN" not in error
    assert not spark.catalog.tableExists("local.analytics.never_failing")
    assert not [f for f in table_files(warehouse, "never_failing") if f.suffix == ".parquet"]


def test_reads_csv_input(
    spark: SparkSession, api: Api, warehouse: CatalogConfig, dataset: Path, tmp_path: Path
) -> None:
    csv_folder = tmp_path / "csv"
    spark.read.parquet(str(dataset)).limit(500).write.option("header", "true").csv(str(csv_folder))
    summary = run(
        parse_config(job(api, warehouse, dataset, "from_csv", input={"path": str(csv_folder), "format": "csv"}))
    )
    assert summary["rows"] == 500


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"input": {"path": ""}}, "input.path: required"),
        ({"input": {"path": "/no/such/input", "format": "parquet"}}, "input.path: /no/such/input does not exist"),
        ({"input": {"path": "x", "format": "orc"}}, "input.format: must be parquet or csv"),
        ({"columns": {}}, "columns: must map column names to contexts"),
        ({"columns": {"vim": "vin"}}, "columns.vim: the input has no column vim"),
        ({"api": {"url": ""}}, "api.url: required"),
        ({"api": {"batchSize": 0}}, "api: batch_size must be 1..10000"),
        ({"api": {"concurrency": True}}, "api.concurrency: must be of type int"),
        ({"table": {"name": "analytics.vehicles"}}, "table.name: must be local.<namespace>.<table>"),
        ({"table": {"name": "local.a.b", "partitionBy": ["days(ts); DROP TABLE x"]}}, "table.partitionBy"),
        (
            {"catalog": {"type": "glue", "warehouse": "/tmp/wh"}},
            "catalog.warehouse: the glue catalog needs an s3:// warehouse",
        ),
    ],
)
def test_configuration_errors_name_the_key(
    spark: SparkSession,
    api: Api,
    warehouse: CatalogConfig,
    dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, Any],
    message: str,
) -> None:
    raw = job(api, warehouse, dataset, "bad")
    for section, values in change.items():
        raw[section] = (
            {**raw[section], **values} if isinstance(raw.get(section), dict) and section != "columns" else values
        )
    config = tmp_path / "job.json"
    config.write_text(json.dumps(raw))
    assert main(["--config", str(config)]) == 2
    assert message in capsys.readouterr().err


def test_parse_config_rejects_a_missing_section() -> None:
    with pytest.raises(JobConfigError, match=r"input\.path: required"):
        parse_config({})
