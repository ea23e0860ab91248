"""SparkMetrics' counts, without Spark: the per-column transform the Arrow path runs, on Arrow arrays, against
the real API, with driver-side accumulators (no SparkContext is needed to build or add to them)."""

from __future__ import annotations

from dataclasses import fields
from itertools import count

import pyarrow as pa
from pyspark.accumulators import INT_ACCUMULATOR_PARAM, Accumulator

from spark_udfs import SparkMetrics
from spark_udfs.client import PseudonymizationClient
from spark_udfs.spark import _transform

from .conftest import Api

# Far above the ids a SparkContext hands out, so these never shadow a session's accumulator in the registry.
_ids = count(1 << 40)


def driver_metrics() -> SparkMetrics:
    return SparkMetrics(*(Accumulator(next(_ids), 0, INT_ACCUMULATOR_PARAM) for _ in fields(SparkMetrics)))


def test_unique_ratio_stays_within_one_over_several_columns(api: Api) -> None:
    # Two columns of distinct values: every value seen is sent once. Dividing by rows said 2.0.
    client = PseudonymizationClient(api.client())
    metrics = driver_metrics()
    vins = pa.array([f"VIN{i:014d}" for i in range(40)] + [None] * 10)
    emails = pa.array([f"person{i}@example.com" for i in range(50)])
    for column, context in ((vins, "vin"), (emails, "email")):
        _transform(client, column, "pseudonymize", context, True, metrics)
    assert metrics.values_seen.value == 90
    assert metrics.unique_values.value == 90
    assert metrics.unique_ratio() == 1.0


def test_unique_ratio_is_the_share_of_values_sent(api: Api) -> None:
    client = PseudonymizationClient(api.client())
    metrics = driver_metrics()
    repeated = pa.array([f"VIN{i % 5:014d}" for i in range(20)])
    distinct = pa.array([f"VIN{i:014d}" for i in range(100, 120)])
    for column in (repeated, distinct):
        _transform(client, column, "pseudonymize", "vin", True, metrics)
    assert (metrics.unique_values.value, metrics.values_seen.value) == (25, 40)
    assert metrics.unique_ratio() == 25 / 40
    assert driver_metrics().unique_ratio() == 0.0
