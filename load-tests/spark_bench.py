"""`npm run bench:spark`: pseudonymizing `vin` into Iceberg with local Spark, end to end.

Datasets (generated here with Arrow, Parquet): `dept_id` (50 values), `vin` (10,000 distinct), `example_ts`;
BENCH_ROWS rows (default 10,000,000), and a high-cardinality variant where every `vin` is distinct.
Each run reads the Parquet, pseudonymizes `vin` through the API (node dist/server.mjs on this machine) and
appends to a new Iceberg v2 table (JDBC catalog on SQLite), i.e. the batch job's own path.

The naive pattern (row-based rdd.mapPartitions, list(iterator), chunks of 900 rows, one JSON POST of each
chunk's distinct values to /pseudonymization, rows rebuilt, createDataFrame) runs against the same API in
the same run, on BENCH_NAIVE_ROWS rows (default 1,000,000: at its speed the full dataset would take
many minutes); rows/s are comparable as throughput.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import requests
from bench_cli import parse_arguments  # load-tests/, this script's folder

parse_arguments(
    "npm run bench:spark",
    "Pseudonymizing `vin` into Iceberg with local Spark end to end (Parquet in, API node dist/server.mjs, Iceberg v2\n"
    "out), for 10,000 distinct and all-distinct VINs, against the naive row-based pattern on fewer rows.",
    "about 2 minutes with the defaults (more on a busy machine)",
    [
        ("BENCH_ROWS", "rows of the generated datasets (default 10000000)"),
        ("BENCH_NAIVE_ROWS", "rows for the naive pattern (default 1000000)"),
    ],
    ["npm run build && npm run bench:spark", "BENCH_ROWS=1000000 BENCH_NAIVE_ROWS=100000 npm run bench:spark"],
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "spark-udfs" / "src"))
sys.path.insert(0, str(ROOT / "test" / "python"))  # test_support: servers for tests and benchmarks, not shipped

from spark_udfs import ApiKeySource, ClientConfig, pseudonymize  # noqa: E402
from spark_udfs.jobs.session import CatalogConfig, build_session  # noqa: E402
from test_support.servers import ApiServer, api_server  # noqa: E402
from test_support.spark import use_local_jars  # noqa: E402

use_local_jars()

ROWS = int(os.environ.get("BENCH_ROWS", "10000000"))
NAIVE_ROWS = int(os.environ.get("BENCH_NAIVE_ROWS", "1000000"))
CORES = 2


def vins(numbers: np.ndarray) -> pa.Array:
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), 14, "0")
    return pc.binary_join_element_wise(pa.scalar("VIN"), digits, "")


def generate(path: Path, rows: int, distinct: int | None) -> None:
    """Rows in chunks; `vin` cycles through `distinct` values scattered over the rows, or is unique per row."""
    start = np.datetime64("2026-01-01T00:00:00", "us")
    with pq.ParquetWriter(path, pa.schema([("dept_id", pa.int32()), ("vin", pa.string()), ("example_ts", pa.timestamp("us"))])) as writer:
        for offset in range(0, rows, 2_000_000):
            index = np.arange(offset, min(rows, offset + 2_000_000), dtype=np.int64)
            vin_numbers = index if distinct is None else (index * 2654435761) % distinct
            writer.write_table(
                pa.table(
                    {
                        "dept_id": pa.array(((index * 40503) % 50).astype(np.int32)),
                        "vin": vins(vin_numbers),
                        "example_ts": pa.array(start + index.astype("timedelta64[s]")),
                    }
                )
            )


def run(api: ApiServer) -> None:
    work = Path(tempfile.mkdtemp(prefix="spark-bench-"))
    url = api.url
    key_file = api.key_files["pseudonymize"]
    try:
        client = ClientConfig(url=url, api_key=ApiKeySource(env=None, file=key_file))
        catalog = CatalogConfig(uri=str(work / "catalog.db"), warehouse=str(work / "warehouse"))
        spark = build_session(catalog, app_name="spark-bench", master=f"local[{CORES}]")
        spark.sparkContext.setLogLevel("ERROR")
        spark.sql("CREATE NAMESPACE IF NOT EXISTS local.bench")
        rows: list[tuple[str, ...]] = []

        def timed_job(name: str, source: Path, limit: int | None = None) -> float:
            df = spark.read.parquet(str(source))
            if limit:
                df = df.limit(limit)
            table = f"local.bench.{name}"
            spark.sql(f"CREATE TABLE {table} (dept_id int, vin string, example_ts timestamp) USING iceberg TBLPROPERTIES ('format-version'='2', 'write.metadata.metrics.column.vin'='none')")
            started = time.perf_counter()
            pseudonymize(df, {"vin": "vin"}, client).writeTo(table).append()
            seconds = time.perf_counter() - started
            assert spark.table(table).count() == (limit or ROWS)
            return seconds

        def naive(source: Path, limit: int) -> float:
            from pyspark.sql import Row

            api_key = Path(key_file).read_text().strip()
            endpoint = url + "/pseudonymization?deterministic=true"

            def fun(iterator):  # type: ignore[no-untyped-def]
                rows_ = list(iterator)
                out = []
                session = requests.Session()
                for i in range(0, len(rows_), 900):
                    chunk = rows_[i : i + 900]
                    distinct = list({r["vin"] for r in chunk if r["vin"]})
                    result = session.post(endpoint, json={"identifiers": distinct}, headers={"x-api-key": api_key}).json()["pseudonyms"]
                    mapping = dict(zip(distinct, result))
                    for r in chunk:
                        d = r.asDict()
                        d["vin"] = mapping.get(d["vin"], "")
                        out.append(Row(**d))
                yield out

            df = spark.read.parquet(str(source)).limit(limit)
            table = f"local.bench.naive_{limit}"
            spark.sql(f"CREATE TABLE {table} (dept_id int, vin string, example_ts timestamp) USING iceberg TBLPROPERTIES ('format-version'='2')")
            started = time.perf_counter()
            rdd = df.rdd.repartition(CORES).mapPartitions(fun).flatMap(lambda x: x)
            spark.createDataFrame(rdd, schema=df.schema).writeTo(table).append()
            seconds = time.perf_counter() - started
            assert spark.table(table).count() == limit
            return seconds

        low = work / "vin_10k.parquet"
        high = work / "vin_distinct.parquet"
        started = time.perf_counter()
        generate(low, ROWS, 10_000)
        generate(high, ROWS, None)
        generation = time.perf_counter() - started
        distinct_low = spark.read.parquet(str(low)).select("vin").distinct().count()
        distinct_high = spark.read.parquet(str(high)).select("vin").distinct().count()

        # Untimed warm-up: JVM code paths, Python workers, the API's JIT; both patterns benefit alike.
        timed_job("warm_up", low, limit=200_000)
        fast = timed_job("vin_10k", low)
        rows.append(("spark-udfs pseudonymize (mapInArrow) -> Iceberg", f"{ROWS:,}", f"{distinct_low:,}", f"{fast:.1f}", f"{ROWS / fast:,.0f}", f"{ROWS / fast / CORES:,.0f}"))
        fast_high = timed_job("vin_distinct", high)
        rows.append(("spark-udfs pseudonymize (mapInArrow) -> Iceberg", f"{ROWS:,}", f"{distinct_high:,}", f"{fast_high:.1f}", f"{ROWS / fast_high:,.0f}", f"{ROWS / fast_high / CORES:,.0f}"))
        naive(low, 20_000)  # warm-up
        slow = naive(low, NAIVE_ROWS)
        rows.append(("naive rdd.mapPartitions, 900-row POSTs -> Iceberg", f"{NAIVE_ROWS:,}", "10,000", f"{slow:.1f}", f"{NAIVE_ROWS / slow:,.0f}", f"{NAIVE_ROWS / slow / CORES:,.0f}"))
        speedup = (ROWS / fast) / (NAIVE_ROWS / slow)

        print(f"date:    {datetime.now(timezone.utc).isoformat()}")
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
        print(f"machine: {cpu}, {os.cpu_count()} cores, {platform.system()}/{platform.machine()}")
        print(f"runtime: Python {platform.python_version()}, Spark {spark.version} local[{CORES}], Iceberg 1.12.0 (JDBC catalog on SQLite), API node dist/server.mjs (1 process) on the same cores")
        print("command: npm run bench:spark")
        print(f"dataset generation: {generation:.1f} s for 2 x {ROWS:,} rows\n")
        headers = ("pattern", "rows", "distinct vin", "seconds", "rows/s", f"rows/s per core ({CORES})")
        widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
        print("| " + " | ".join(h.ljust(widths[i]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(headers)) + " |")
        print("|" + "|".join((":" + "-" * (w + 1)) if i == 0 else ("-" * (w + 1) + ":") for i, w in enumerate(widths)) + "|")
        for r in rows:
            print("| " + " | ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)) + " |")
        print(f"\nspeed-up over the naive pattern (10,000 distinct): {speedup:.1f}x")
        spark.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    with api_server() as running:
        run(running)
