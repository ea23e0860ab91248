"""Appending to a table with a sort order: Spark's range distribution samples its input before the sorted write,
which ran the pseudonymizing step twice (twice the requests, twice the rows in the summary). The job pseudonymizes
once and counts once, whether it creates the table or appends to it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

from spark_udfs.jobs.batch import parse_config, run
from spark_udfs.jobs.session import CatalogConfig
from test_support.servers import FaultProxy

from .conftest import Api

ROWS = 2_000
DISTINCT_VINS = 400
BATCH_SIZE = 100


@pytest.fixture(scope="module")
def small_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small Parquet file: one Spark partition, one Arrow batch, so one pass sends DISTINCT_VINS / BATCH_SIZE
    requests."""
    start = dt.datetime(2026, 1, 1)
    table = pa.table(
        {
            "vin": pa.array([f"SORTEDVIN{i % DISTINCT_VINS:06d}" for i in range(ROWS)]),
            "customer_id": pa.array([f"C{(ROWS - i) % 997:05d}" for i in range(ROWS)]),
            "example_ts": pa.array(
                [start + dt.timedelta(minutes=(i * 37) % 5000) for i in range(ROWS)], pa.timestamp("us")
            ),
        }
    )
    path = tmp_path_factory.mktemp("sorted-input") / "vehicles.parquet"
    pq.write_table(table, path)
    return path


def sorted_job(api_url: str, key_file: str, warehouse: CatalogConfig, source: Path) -> dict[str, object]:
    return {
        "input": {"path": str(source), "format": "parquet"},
        "columns": {"vin": "vin"},
        "api": {"url": api_url, "apiKeyFile": key_file, "batchSize": BATCH_SIZE, "concurrency": 2},
        "catalog": {"name": warehouse.name, "type": "jdbc", "uri": warehouse.uri, "warehouse": warehouse.warehouse},
        "table": {"name": "local.analytics.sorted_append", "sortBy": ["example_ts", "customer_id"]},
        "master": "local[2]",
    }


def test_an_append_to_a_sorted_table_pseudonymizes_each_row_once(
    spark: SparkSession, api: Api, warehouse: CatalogConfig, small_input: Path
) -> None:
    one_pass = DISTINCT_VINS // BATCH_SIZE
    for expected_rows in (ROWS, 2 * ROWS):  # the first run creates the table, the second appends in sort order
        with FaultProxy(api.url) as proxy:
            summary = run(parse_config(sorted_job(proxy.url, api.pseudonymize_key_file, warehouse, small_input)))
        assert summary["rows"] == ROWS, (expected_rows, summary)
        assert summary["requests"] == one_pass
        assert proxy.counts["forwarded"] == one_pass
        assert spark.table("local.analytics.sorted_append").count() == expected_rows
    properties = {r["key"]: r["value"] for r in spark.sql("SHOW TBLPROPERTIES local.analytics.sorted_append").collect()}
    assert "example_ts" in properties.get("sort-order", "")
