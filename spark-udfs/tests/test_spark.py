"""pseudonymize / reidentify on a real local Spark session against the real API."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from spark_udfs import SparkMetrics, pseudonymize, pseudonymize_rows, reidentify

from .conftest import Api

ROWS = [
    (i % 50, None if i % 97 == 0 else f"VIN{i % 300:014d}", f"2026-01-{1 + i % 28:02d}T10:00:00", f"note {i}")
    for i in range(5000)
]
SCHEMA = "dept_id int, vin string, example_ts string, note string"


def test_replaces_only_the_named_columns_keeping_rows_and_nulls(spark: SparkSession, api: Api) -> None:
    df = spark.createDataFrame(ROWS, SCHEMA).repartition(4)
    metrics = SparkMetrics.create(spark)
    out = pseudonymize(df, {"vin": "vin"}, api.client(batch_size=64), metrics=metrics)
    assert out.schema == df.schema
    rows = sorted(out.collect(), key=lambda r: r.note)
    source = sorted(df.collect(), key=lambda r: r.note)
    assert len(rows) == len(source) == 5000
    vins = [f"VIN{i:014d}" for i in range(300)]
    answer = api.call("/v1/pseudonymize", {"context": "vin", "values": vins})["pseudonyms"]
    expected = dict(zip(vins, answer, strict=True))  # type: ignore[arg-type]
    for before, after in zip(source, rows, strict=True):
        assert (after.dept_id, after.example_ts, after.note) == (before.dept_id, before.example_ts, before.note)
        assert after.vin == (None if before.vin is None else expected[before.vin])
    assert metrics.rows.value == 5000
    assert 0 < metrics.unique_ratio() < 0.5
    assert metrics.requests.value > 0


def test_reidentify_round_trips(spark: SparkSession, api: Api) -> None:
    df = spark.createDataFrame(ROWS, SCHEMA)
    there = pseudonymize(df, {"vin": "vin"}, api.client())
    back = reidentify(there, {"vin": "vin"}, api.client(key="reidentify"))
    assert sorted(back.collect(), key=lambda r: r.note) == sorted(df.collect(), key=lambda r: r.note)


def test_row_based_helper_gives_the_same_result(spark: SparkSession, api: Api) -> None:
    df = spark.createDataFrame(ROWS, SCHEMA).repartition(3)
    arrow = sorted(pseudonymize(df, {"vin": "vin"}, api.client()).collect(), key=lambda r: r.note)
    rows = sorted(pseudonymize_rows(df, {"vin": "vin"}, api.client(), chunk_rows=700).collect(), key=lambda r: r.note)
    assert arrow == rows


def test_randomized_mode_gives_each_occurrence_its_own_pseudonym(spark: SparkSession, api: Api) -> None:
    df = spark.createDataFrame([("A",), ("A",), (None,)], "vin string")
    out = [r.vin for r in pseudonymize(df, {"vin": "vin"}, api.client(), deterministic=False).collect()]
    assert out[2] is None and out[0] != out[1] and out[0].startswith("r1.")


def test_refuses_unknown_and_non_string_columns_before_any_work(spark: SparkSession, api: Api) -> None:
    df = spark.createDataFrame(ROWS, SCHEMA)
    with pytest.raises(ValueError, match="unknown column 'vim'; the data has: dept_id, example_ts, note, vin"):
        pseudonymize(df, {"vim": "vin"}, api.client())
    with pytest.raises(ValueError, match="column 'dept_id' is int, not string: cast it first"):
        pseudonymize(df, {"dept_id": "vin"}, api.client())
