"""Pseudonymize or reidentify DataFrame columns through the API, once per Arrow batch.

`pseudonymize(df, columns={"vin": "vin"}, client=ClientConfig(...))` keeps the schema and the rows:
for each Arrow batch of a partition (``mapInArrow``), the unique non-null values of each column go to
the API in chunks, and the answers are mapped back by dictionary (Arrow ``index_in`` + ``take``), so
nulls stay null and no value is sent twice per batch. Keys never reach the executors.

A failed call fails the task (Spark retries it, then fails the job): no pseudonym is ever replaced by
a null or an empty string. ``pseudonymize_rows`` gives the same contract on ``rdd.mapPartitions`` for
Spark versions without ``mapInArrow``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pyspark import Accumulator
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql.types import StringType

from .client import ClientConfig, PseudonymizationClient, shared_client

Operation = Literal["pseudonymize", "reidentify"]


@dataclass(frozen=True)
class SparkMetrics:
    """Client-side counts as Spark accumulators (read them on the driver after an action). No values."""

    rows: Accumulator[int]
    unique_values: Accumulator[int]
    requests: Accumulator[int]
    retries: Accumulator[int]

    @staticmethod
    def create(spark: SparkSession) -> SparkMetrics:
        sc = spark.sparkContext
        return SparkMetrics(sc.accumulator(0), sc.accumulator(0), sc.accumulator(0), sc.accumulator(0))

    def unique_ratio(self) -> float:
        return self.unique_values.value / self.rows.value if self.rows.value else 0.0


def pseudonymize(
    df: DataFrame,
    columns: Mapping[str, str],
    client: ClientConfig,
    *,
    deterministic: bool = True,
    metrics: SparkMetrics | None = None,
) -> DataFrame:
    """The DataFrame with each column of `columns` (column name -> context) replaced by its pseudonyms."""
    return _map(df, columns, client, "pseudonymize", deterministic, metrics)


def reidentify(
    df: DataFrame, columns: Mapping[str, str], client: ClientConfig, *, metrics: SparkMetrics | None = None
) -> DataFrame:
    """The DataFrame with each column of pseudonyms replaced by the identifiers (needs the reidentify role)."""
    return _map(df, columns, client, "reidentify", True, metrics)


def check_columns(df: DataFrame, columns: Mapping[str, str]) -> None:
    """Fails before any work when a column is missing or not a string column."""
    if not columns:
        raise ValueError("name at least one column to transform")
    fields = {f.name: f for f in df.schema.fields}
    for name in columns:
        if name not in fields:
            raise ValueError(f"unknown column {name!r}; the data has: {', '.join(sorted(fields))}")
        if not isinstance(fields[name].dataType, StringType):
            raise ValueError(f"column {name!r} is {fields[name].dataType.simpleString()}, not string: cast it first")


def _map(
    df: DataFrame,
    columns: Mapping[str, str],
    config: ClientConfig,
    operation: Operation,
    deterministic: bool,
    metrics: SparkMetrics | None,
) -> DataFrame:
    check_columns(df, columns)
    mapping = dict(columns)

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        client = shared_client(config)
        for batch in batches:
            before = (client.stats.requests, client.stats.retries)
            arrays = list(batch.columns)
            for name, context in mapping.items():
                index = batch.schema.get_field_index(name)
                arrays[index] = _transform(client, batch.column(index), operation, context, deterministic, metrics)
            if metrics is not None:
                metrics.rows.add(batch.num_rows)
                metrics.requests.add(client.stats.requests - before[0])
                metrics.retries.add(client.stats.retries - before[1])
            yield pa.RecordBatch.from_arrays(arrays, schema=batch.schema)

    return df.mapInArrow(run, df.schema)


def _transform(
    client: PseudonymizationClient,
    column: pa.Array,
    operation: Operation,
    context: str,
    deterministic: bool,
    metrics: SparkMetrics | None,
) -> pa.Array:
    if not deterministic:
        # Every occurrence gets its own randomized pseudonym: no dedup.
        present = column.drop_null().to_pylist()
        answers = iter(client.pseudonymize(context, present, deterministic=False))
        if metrics is not None:
            metrics.unique_values.add(len(present))
        return pa.array([None if v is None else next(answers) for v in column.to_pylist()], type=column.type)
    unique = pc.unique(column.drop_null())
    values = unique.to_pylist()
    if metrics is not None:
        metrics.unique_values.add(len(values))
    results = (
        client.pseudonymize(context, values) if operation == "pseudonymize" else client.reidentify(context, values)
    )
    # index_in gives null for a null input, and take() of a null index is null: nulls stay null.
    return pa.array(results, type=column.type).take(pc.index_in(column, value_set=unique))


def pseudonymize_rows(
    df: DataFrame, columns: Mapping[str, str], client: ClientConfig, *, chunk_rows: int = 10_000
) -> DataFrame:
    """The same contract as `pseudonymize`, on rdd.mapPartitions, for Spark versions without mapInArrow."""
    check_columns(df, columns)
    mapping = dict(columns)
    names = df.columns

    def run(rows: Iterable[Row]) -> Iterator[Row]:
        api = shared_client(client)
        chunk: list[Row] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= chunk_rows:
                yield from _rows_chunk(api, chunk, mapping, names)
                chunk = []
        if chunk:
            yield from _rows_chunk(api, chunk, mapping, names)

    spark = df.sparkSession
    return spark.createDataFrame(df.rdd.mapPartitions(run), df.schema)


def _rows_chunk(
    api: PseudonymizationClient, chunk: list[Row], mapping: Mapping[str, str], names: list[str]
) -> Iterator[Row]:
    replaced: dict[str, dict[str, str]] = {}
    for name, context in mapping.items():
        unique = list(dict.fromkeys(row[name] for row in chunk if row[name] is not None))
        replaced[name] = dict(zip(unique, api.pseudonymize(context, unique), strict=True))
    for row in chunk:
        values = row.asDict()
        for name, table in replaced.items():
            if values[name] is not None:
                values[name] = table[values[name]]
        yield Row(*[values[n] for n in names])
