"""Pseudonymize or reidentify DataFrame columns through the API, once per Arrow batch.

`pseudonymize(df, columns={"vin": "vin"}, client=ClientConfig(...))` keeps the schema and the rows:
for each Arrow batch of a partition (``mapInArrow``), the unique non-null values of each column go to
the API in chunks, and the answers are mapped back by dictionary (Arrow ``index_in`` + ``take``), so
nulls stay null and no value is sent twice per batch. Keys never reach the executors.

A failed call fails the task (Spark retries it, then fails the job): no pseudonym is ever replaced by
a null or an empty string. ``pseudonymize_rows`` gives the same contract on ``rdd.mapPartitions`` for
Spark versions without ``mapInArrow``.

Suppression at ingestion: when the API withholds a value (its subject's erasure was filed), the row is
dropped (``suppressed="drop"``, the default; a row goes if any of its pseudonymized columns is withheld,
counted in ``SparkMetrics.suppressed_rows``) or the task fails with ``SubjectSuppressed``
(``suppressed="fail"``). Never is the person's value replaced by a null in a table.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Literal, get_args

import pyarrow as pa
import pyarrow.compute as pc
from pyspark import Accumulator
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql.types import StringType

from .client import ClientConfig, PseudonymizationClient, SubjectSuppressed, shared_client

Operation = Literal["pseudonymize", "reidentify"]
#: What to do with a row whose subject's erasure was filed: leave it out (counted), or fail the job.
SuppressedPolicy = Literal["drop", "fail"]
SUPPRESSED_POLICIES: tuple[SuppressedPolicy, ...] = get_args(SuppressedPolicy)


@dataclass(frozen=True)
class SparkMetrics:
    """Client-side counts as Spark accumulators (read them on the driver after an action). No values."""

    rows: Accumulator[int]
    #: Distinct non-null values sent to the API, per batch and column (each column counts apart).
    unique_values: Accumulator[int]
    requests: Accumulator[int]
    retries: Accumulator[int]
    #: Rows left out because a pseudonymized column's subject has an erasure filed (counted in `rows` too).
    suppressed_rows: Accumulator[int]
    #: Non-null values read from the transformed columns: a row with two such columns counts twice.
    values_seen: Accumulator[int]

    @staticmethod
    def create(spark: SparkSession) -> SparkMetrics:
        sc = spark.sparkContext
        return SparkMetrics(*(sc.accumulator(0) for _ in fields(SparkMetrics)))

    def unique_ratio(self) -> float:
        """Values sent over values seen, over all columns: between 0 and 1 (1 when nothing repeats).

        Dividing by rows instead gave 2.0 for two columns of distinct values."""
        return self.unique_values.value / self.values_seen.value if self.values_seen.value else 0.0


def pseudonymize(
    df: DataFrame,
    columns: Mapping[str, str],
    client: ClientConfig,
    *,
    deterministic: bool = True,
    metrics: SparkMetrics | None = None,
    suppressed: SuppressedPolicy = "drop",
) -> DataFrame:
    """The DataFrame with each column of `columns` (column name -> context) replaced by its pseudonyms, without
    the rows whose subject's erasure was filed (or, with suppressed="fail", failing on the first such row)."""
    return _map(df, columns, client, "pseudonymize", deterministic, metrics, suppressed)


def reidentify(
    df: DataFrame, columns: Mapping[str, str], client: ClientConfig, *, metrics: SparkMetrics | None = None
) -> DataFrame:
    """The DataFrame with each column of pseudonyms replaced by the identifiers (needs the reidentify role)."""
    return _map(df, columns, client, "reidentify", True, metrics, "fail")


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
    suppressed: SuppressedPolicy,
) -> DataFrame:
    check_columns(df, columns)
    if suppressed not in SUPPRESSED_POLICIES:
        raise ValueError(f"suppressed must be one of {', '.join(SUPPRESSED_POLICIES)}")
    mapping = dict(columns)

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        client = shared_client(config)
        for batch in batches:
            before = (client.stats.requests, client.stats.retries)
            arrays = list(batch.columns)
            withheld: pa.Array | None = None  # per row, whether any column's value was withheld; None: none was
            for name, context in mapping.items():
                index = batch.schema.get_field_index(name)
                arrays[index], erased = _transform(
                    client, batch.column(index), operation, context, deterministic, metrics
                )
                if suppressed == "fail" and erased is not None and pc.any(erased).as_py():
                    raise SubjectSuppressed(
                        f"a row's subject has an erasure filed (column {name}, context {context}); the suppressed "
                        "setting is fail, so the job stops rather than leave the row out",
                        frozenset(),
                    )
                if erased is not None:
                    withheld = erased if withheld is None else pc.or_(withheld, erased)
            dropped = 0 if withheld is None else (pc.sum(withheld.cast(pa.int64())).as_py() or 0)
            if metrics is not None:
                metrics.rows.add(batch.num_rows)
                metrics.suppressed_rows.add(dropped)
                metrics.requests.add(client.stats.requests - before[0])
                metrics.retries.add(client.stats.retries - before[1])
            result = pa.RecordBatch.from_arrays(arrays, schema=batch.schema)
            yield result.filter(pc.invert(withheld)) if withheld is not None and dropped else result

    return df.mapInArrow(run, df.schema)


def _transform(
    client: PseudonymizationClient,
    column: pa.Array,
    operation: Operation,
    context: str,
    deterministic: bool,
    metrics: SparkMetrics | None,
) -> tuple[pa.Array, pa.Array | None]:
    """The column transformed, and per row whether its value was withheld (its subject's erasure was filed), or None
    when no row's was.

    The Arrow arrays go to the client as they are (on the wire as Arrow IPC when the API takes it): no Python list of
    values is built on this path. The distinct values and each row's position among them come from one dictionary
    encoding (one hashing pass of the column); a column whose values are all present and distinct is its own
    dictionary, in its order, and its answers need no mapping back."""
    if not deterministic:
        # Every occurrence gets its own randomized pseudonym: no dedup; nulls stay null in the answer.
        answer = client.pseudonymize_array(context, column, deterministic=False)
        if metrics is not None:
            metrics.unique_values.add(len(column) - column.null_count)
            metrics.values_seen.add(len(column) - column.null_count)
        return answer.pseudonyms.cast(column.type), _flags(answer.suppressed, len(column))
    # Nulls are null indices, not a dictionary entry: they are not sent, and take() of a null index is null.
    encoded = pc.dictionary_encode(column)
    unique, positions = encoded.dictionary, encoded.indices
    if metrics is not None:
        metrics.unique_values.add(len(unique))
        metrics.values_seen.add(len(column) - column.null_count)
    suppressed: frozenset[int] = frozenset()
    if operation == "pseudonymize":
        answered = client.pseudonymize_array(context, unique)
        results, suppressed = answered.pseudonyms, answered.suppressed
    else:
        results = client.reidentify_array(context, unique)
    results = results.cast(column.type)
    if len(unique) == len(column):
        return results, _flags(suppressed, len(column))
    flags = _flags(suppressed, len(unique))
    return results.take(positions), None if flags is None else flags.take(positions).fill_null(False)


def _flags(indexes: frozenset[int], size: int) -> pa.Array | None:
    """A boolean array of `size`, true at `indexes`; None when there are none (the usual case: no Python list)."""
    if not indexes:
        return None
    return pa.array([i in indexes for i in range(size)], pa.bool_())


def pseudonymize_rows(
    df: DataFrame,
    columns: Mapping[str, str],
    client: ClientConfig,
    *,
    chunk_rows: int = 10_000,
    suppressed: SuppressedPolicy = "drop",
) -> DataFrame:
    """The same contract as `pseudonymize`, on rdd.mapPartitions, for Spark versions without mapInArrow."""
    check_columns(df, columns)
    if suppressed not in SUPPRESSED_POLICIES:
        raise ValueError(f"suppressed must be one of {', '.join(SUPPRESSED_POLICIES)}")
    mapping = dict(columns)
    names = df.columns

    def run(rows: Iterable[Row]) -> Iterator[Row]:
        api = shared_client(client)
        chunk: list[Row] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= chunk_rows:
                yield from _rows_chunk(api, chunk, mapping, names, suppressed)
                chunk = []
        if chunk:
            yield from _rows_chunk(api, chunk, mapping, names, suppressed)

    spark = df.sparkSession
    return spark.createDataFrame(df.rdd.mapPartitions(run), df.schema)


def _rows_chunk(
    api: PseudonymizationClient,
    chunk: list[Row],
    mapping: Mapping[str, str],
    names: list[str],
    suppressed: SuppressedPolicy,
) -> Iterator[Row]:
    replaced: dict[str, dict[str, str | None]] = {}
    for name, context in mapping.items():
        unique = list(dict.fromkeys(row[name] for row in chunk if row[name] is not None))
        if suppressed == "fail":
            replaced[name] = dict(zip(unique, api.pseudonymize(context, unique), strict=True))
        else:
            replaced[name] = dict(zip(unique, api.pseudonymize_unless_erased(context, unique).pseudonyms, strict=True))
    for row in chunk:
        values = row.asDict()
        for name, table in replaced.items():
            if values[name] is not None:
                values[name] = table[values[name]]
                if values[name] is None:  # withheld: the row is left out, never written with a null
                    break
        else:
            yield Row(*[values[n] for n in names])
