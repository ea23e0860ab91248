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
from typing import TYPE_CHECKING

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


def _package_file() -> str:
    """Where spark_udfs comes from, in the process that asks (a Spark worker)."""
    import spark_udfs

    return str(Path(spark_udfs.__file__ or "").resolve())


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

    if TYPE_CHECKING:
        from pyspark.sql import DataFrame

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
            # The workers must run the revision's client too, not the venv's (which would fill in what it lacks).
            on_workers = spark.sparkContext.parallelize([0], 1).map(lambda _: _package_file()).first()
            if not on_workers.startswith(package):
                raise SystemExit(f"Spark's Python workers imported spark_udfs from elsewhere, not from {package}")

            def prepare(source: Path, table: str) -> DataFrame:
                """The table and the job's DataFrame; what bench:spark does before its clock starts."""
                spark.sql(
                    f"CREATE TABLE {table} (dept_id int, vin string, example_ts timestamp) USING iceberg"
                    " TBLPROPERTIES ('format-version'='2', 'write.metadata.metrics.column.vin'='none')"
                )
                return pseudonymize(spark.read.parquet(str(source)), {"vin": "vin"}, client)

            # Untimed, twice: this JVM is new for every run, where bench:spark's own has run every kind of job before.
            for number in (1, 2):
                prepare(args.warm, f"local.bench.warm_up_{number}").writeTo(f"local.bench.warm_up_{number}").append()
            timed = prepare(args.source, "local.bench.timed")
            hits, misses = cache_lookups(api.url)
            jvm = spark.sparkContext._jvm
            assert jvm is not None
            jvm.java.lang.System.gc()  # as bench:spark does before each timed run
            cpu = tree_cpu(server)
            started = time.perf_counter()
            timed.writeTo("local.bench.timed").append()
            seconds = time.perf_counter() - started
            cpu_after = tree_cpu(server)
            hits_after, misses_after = cache_lookups(api.url)
            # Its pseudonyms are under its own keys: as many rows, each with a pseudonym, as many distinct as the
            # source's values (deterministic pseudonyms), is what can be checked against the other runs.
            counted = spark.sql(
                "SELECT count(*), count(vin), count(DISTINCT vin) FROM local.bench.timed"
                " WHERE vin IS NULL OR vin LIKE 's_.%'"
            ).first()
            source = spark.sql(f"SELECT count(DISTINCT vin) FROM parquet.`{args.source}`").first()
            assert counted is not None and source is not None
            spark.stop()
        result = {
            "seconds": seconds,
            "api": cpu_after.api - cpu.api,
            "spark": cpu_after.spark - cpu.spark,
            "python": cpu_after.python - cpu.python,
            # Rows that look pseudonymized; any other shape, a null or a wrong distinct count makes it 0, a mismatch.
            "rows": int(counted[0]) if counted[0] == counted[1] and counted[2] == source[0] else 0,
            "cache_hits": hits_after - hits,
            "cache_misses": misses_after - misses,
        }
        print("baseline-result: " + json.dumps(result), flush=True)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
