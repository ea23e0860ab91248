"""One run of an earlier revision's batch job for `npm run bench:spark -- --baseline REV` (not run by hand).

The revision's tree, built by bench:spark (`.cache/baseline/<rev>`, its API in dist/), brings its own API server and
its own spark_udfs: this process puts that package first on its path and on its Spark workers' (PYTHONPATH), starts
the revision's API with the revision's test helper (its own keys), and runs what the revision's bench:spark ran:
Parquet in, `spark_udfs.pseudonymize` over mapInArrow, an Iceberg v2 table out, after an untimed warm-up on values
of its own. Spark, Iceberg, the jars and the machine are this checkout's, so the runs beside it differ only in the
platform's code. One line on stdout, `baseline-result: {...}` (JSON: seconds, CPU split, rows, cache counters);
Spark's own logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from spark_measure import cache_lookups, server_pid, tree_cpu


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="load-tests/spark_baseline.py",
        description="One warm-up and one timed run of an earlier revision's batch job (bench:spark --baseline).",
    )
    parser.add_argument("--tree", type=Path, required=True, help="the revision's built tree (.cache/baseline/REV)")
    parser.add_argument("--source", type=Path, required=True, help="the Parquet file of the timed run")
    parser.add_argument("--warm", type=Path, required=True, help="the Parquet file of the untimed warm-up")
    parser.add_argument("--cores", type=int, default=2, help="local[N] (default 2)")
    return parser.parse_args()


def main() -> int:
    args = parse()
    package = str((args.tree / "spark-udfs" / "src").resolve())
    # The workers import the revision's spark_udfs too: cloudpickle sends the job's functions by value but their
    # imports by name, and the venv's own spark_udfs would answer them otherwise.
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (package, os.environ.get("PYTHONPATH", "")) if p)
    sys.path.insert(0, package)
    from spark_udfs import ApiKeySource, ClientConfig, pseudonymize
    from spark_udfs.jobs.session import CatalogConfig, build_session
    from spark_udfs.testing import api_server

    if not str(Path(sys.modules["spark_udfs"].__file__ or "").resolve()).startswith(package):
        raise SystemExit(f"spark_udfs was not imported from {package}")
    work = Path(tempfile.mkdtemp(prefix="spark-baseline-"))
    try:
        with api_server() as api:
            server = server_pid()
            client = ClientConfig(url=api.url, api_key=ApiKeySource(env=None, file=api.key_files["pseudonymize"]))
            catalog = CatalogConfig(uri=str(work / "catalog.db"), warehouse=str(work / "warehouse"))
            spark = build_session(catalog, app_name="spark-bench-baseline", master=f"local[{args.cores}]")
            spark.sparkContext.setLogLevel("ERROR")
            spark.sql("CREATE NAMESPACE IF NOT EXISTS local.bench")

            def job(source: Path, table: str) -> None:
                spark.sql(
                    f"CREATE TABLE {table} (dept_id int, vin string, example_ts timestamp) USING iceberg"
                    " TBLPROPERTIES ('format-version'='2', 'write.metadata.metrics.column.vin'='none')"
                )
                pseudonymize(spark.read.parquet(str(source)), {"vin": "vin"}, client).writeTo(table).append()

            # Untimed, twice: this JVM is new for every run, where bench:spark's own has run every kind of job before.
            job(args.warm, "local.bench.warm_up_1")
            job(args.warm, "local.bench.warm_up_2")
            hits, misses = cache_lookups(api.url)
            jvm = spark.sparkContext._jvm
            assert jvm is not None
            jvm.java.lang.System.gc()  # as bench:spark does before each timed run
            cpu = tree_cpu(server)
            started = time.perf_counter()
            job(args.source, "local.bench.timed")
            seconds = time.perf_counter() - started
            cpu_after = tree_cpu(server)
            hits_after, misses_after = cache_lookups(api.url)
            counted = spark.sql("SELECT count(*) FROM local.bench.timed").first()
            assert counted is not None
            spark.stop()
        result = {
            "seconds": seconds,
            "api": cpu_after.api - cpu.api,
            "spark": cpu_after.spark - cpu.spark,
            "python": cpu_after.python - cpu.python,
            "rows": int(counted[0]),
            "cache_hits": hits_after - hits,
            "cache_misses": misses_after - misses,
        }
        print("baseline-result: " + json.dumps(result), flush=True)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
