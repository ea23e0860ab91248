"""`npm run bench:maintenance`: what table maintenance does to a streamed table, binpack and sort side by side.

Two identical tables (partitioned by hours(event_ts), written ordered by pseudonym) are fed N micro-batches
(default 200; --batches 1000: a simulated day, ~86 s of event time per batch, compressed into minutes) through
the streaming job's own commit path (spark_udfs.jobs.markers.append_once: one Iceberg append per micro-batch
with its exactly-once marker), each batch's rows one slice of the simulated day.
The pseudonyms are synthetic strings shaped like the API's (no API server needed: maintenance never reads them).

Before and after maintenance, per table: data files, manifests, snapshots, metadata size (every file under the
table's metadata/ folder: metadata.json, manifest lists, manifests), and the median of 3 runs of three queries:
a point lookup by pseudonym, the one-day aggregate by hour, a full scan. Maintenance is the job as the service
runs it (`python -m spark_udfs.maintenance.job`, its own Spark in local[2], retention 0 h but the last 10
snapshots): binpack on the first table, sort (the table's write order) on the second; its wall time, Spark
start included, and the job's own seconds per step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="npm run bench:maintenance",
        description="Table maintenance on a table fed by N micro-batches: files, manifests, metadata size and three "
        "query times\nbefore and after, the job's duration; binpack and sort compaction side by side.",
        epilog="\n".join(
            [
                "takes: most of it the appends, ~5-9 s per micro-batch (both tables) on 2 cores shared with other",
                "work (load average 15-35): ~30 min with the defaults, hours with --batches 1000. A run stopped",
                "early keeps its tables (the folder is printed first): --resume FOLDER continues its appends.",
                "",
                "examples:",
                "  npm run bench:maintenance",
                "  npm run bench:maintenance -- --batches 1000",
                "  npm run bench:maintenance -- --batches 50 --rows-per-batch 200",
                "  npm run bench:maintenance -- --batches 1000 --resume /tmp/maintenance-bench-abc123",
                "",
                "exit status: 0 done, 1 the run failed, 2 usage error",
            ]
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--batches", type=int, default=200, help="micro-batches per table (default 200; 1000: a day)")
    parser.add_argument("--rows-per-batch", type=int, default=500, help="rows per micro-batch (default 500)")
    parser.add_argument(
        "--resume",
        metavar="FOLDER",
        help="continue a run stopped during its appends (same --batches and --rows-per-batch): the batches its "
        "tables' markers hold are skipped",
    )
    return parser.parse_args()


ARGS = arguments()
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "spark-udfs" / "src"))
sys.path.insert(0, str(ROOT / "test" / "python"))  # test_support: shared with the tests, not shipped

from spark_udfs.jobs.markers import BATCH_ID_PROPERTY, QUERY_ID_PROPERTY, append_once  # noqa: E402
from spark_udfs.jobs.session import CatalogConfig, build_session  # noqa: E402
from test_support.spark import use_local_jars  # noqa: E402

use_local_jars()

DAY = datetime(2026, 11, 25, tzinfo=UTC)
DISTINCT = 20_000
SCHEMA = "event_ts timestamp, pseudonym string, dept_id int, amount double"
QUERIES = {
    "point lookup": "SELECT count(*), sum(amount) FROM {t} WHERE pseudonym = 's1.bench-0000777-pseudonym'",
    "day aggregate": (
        "SELECT hour(event_ts), count(*), sum(amount) FROM {t} WHERE event_ts >= TIMESTAMP '2026-11-25 00:00:00' "
        "AND event_ts < TIMESTAMP '2026-11-26 00:00:00' GROUP BY 1"
    ),
    "full scan": "SELECT count(*), count(DISTINCT pseudonym), sum(amount) FROM {t}",
}


def batch(spark: Any, index: int) -> Any:
    from pyspark.sql import functions as F

    rows = ARGS.rows_per_batch
    seconds_per_batch = 86_400 / ARGS.batches
    ids = spark.range(index * rows, (index + 1) * rows)
    return ids.select(
        # A micro-batch holds records of its trigger interval: one slice of the simulated day.
        F.timestamp_seconds(
            F.lit(DAY.timestamp() + index * seconds_per_batch) + (F.col("id") % rows) * (seconds_per_batch / rows)
        ).alias("event_ts"),
        F.format_string("s1.bench-%07d-pseudonym", ((F.col("id") * 7919) % DISTINCT).cast("int")).alias("pseudonym"),
        (F.col("id") % 50).cast("int").alias("dept_id"),
        (F.col("id") % 1000 / 10).alias("amount"),
    )


def folder_bytes(location: str) -> int:
    return sum(f.stat().st_size for f in Path(location).rglob("*") if f.is_file())


def location(spark: Any, table: str) -> str:
    rows = {r["col_name"]: r["data_type"] for r in spark.sql(f"DESCRIBE TABLE EXTENDED {table}").collect()}
    return str(rows["Location"]).removeprefix("file:").removeprefix("//")


def measure(spark: Any, table: str) -> dict[str, Any]:
    spark.sql(f"REFRESH TABLE {table}")

    def count(sql: str) -> int:
        return int(spark.sql(sql).collect()[0][0])

    timings = {}
    for name, sql in QUERIES.items():
        runs = []
        for _ in range(3):
            began = time.monotonic()
            spark.sql(sql.format(t=table)).collect()
            runs.append(time.monotonic() - began)
        timings[name] = statistics.median(runs)
    return {
        "data files": count(f"SELECT count(*) FROM {table}.files WHERE content = 0"),
        "manifests": count(f"SELECT count(*) FROM {table}.manifests"),
        "snapshots": count(f"SELECT count(*) FROM {table}.snapshots"),
        "metadata MB": folder_bytes(os.path.join(location(spark, table), "metadata")) / 1e6,
        "rows": count(f"SELECT count(*) FROM {table}"),
        **timings,
    }


def maintain(catalog: CatalogConfig, folder: str, table: str, strategy: str) -> tuple[float, dict[str, Any]]:
    registry = {
        "catalog": {"name": "local", "type": "jdbc", "uri": catalog.uri, "warehouse": catalog.warehouse},
        "maintenance": {"snapshotRetentionHours": 0, "retainLastSnapshots": 10, "orphanGraceHours": 0},
        # The registry names each table's pseudonym columns (the erasure job's); maintenance does not read them.
        "tables": [{"name": table, "columns": {"pseudonym": "email"}, "maintenance": {"strategy": strategy}}],
    }
    registry_file, report_file = Path(folder, f"registry-{strategy}.json"), Path(folder, f"report-{strategy}.json")
    registry_file.write_text(json.dumps(registry))
    began = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "spark_udfs.maintenance.job",
            "--registry",
            str(registry_file),
            "--report",
            str(report_file),
            "--master",
            "local[2]",
            "--allow-short-orphan-grace",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": str(ROOT / "spark-udfs" / "src")},
    )
    seconds = time.monotonic() - began
    if done.returncode != 0:
        raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
    return seconds, json.loads(report_file.read_text())["tables"][0]


def resumed(spark: Any, tables: list[str]) -> tuple[str, int]:
    """The query id of a stopped run and the first batch some table lacks (its markers are in the snapshots:
    the tables are appended in step, so the other one may hold that batch already)."""
    found = []
    for table in tables:
        row = spark.sql(
            f"SELECT summary['{QUERY_ID_PROPERTY}'] AS query, max(CAST(summary['{BATCH_ID_PROPERTY}'] AS INT)) AS last "
            f"FROM {table}.snapshots WHERE summary['{QUERY_ID_PROPERTY}'] IS NOT NULL GROUP BY 1"
        ).collect()
        if len(row) != 1:
            raise SystemExit(f"--resume: {table} holds no micro-batches of one bench run")
        found.append((str(row[0]["query"]), int(row[0]["last"])))
    if len({query for query, _ in found}) != 1:
        raise SystemExit("--resume: the tables hold micro-batches of different runs")
    return found[0][0], min(last for _, last in found) + 1


def partial(result: tuple[str, str, dict[str, Any]]) -> None:
    """One measurement as soon as it is made (stderr): a run stopped before the tables are printed keeps it."""
    strategy, when, measured = result
    print(
        f"bench:maintenance: {strategy} {when}: {json.dumps(measured)} (load average {os.getloadavg()[0]:.1f})",
        file=sys.stderr,
    )


def main() -> None:
    folder = ARGS.resume or tempfile.mkdtemp(prefix="maintenance-bench-")
    print(f"bench:maintenance: tables in {folder} (a stopped run continues with --resume {folder})", file=sys.stderr)
    catalog = CatalogConfig(uri=f"{folder}/catalog.db", warehouse=f"{folder}/warehouse")
    spark = build_session(catalog, app_name="maintenance-bench", master="local[2]")
    spark.sparkContext.setLogLevel("ERROR")
    tables = {"binpack": "local.bench.events_binpack", "sort": "local.bench.events_sort"}
    began = time.monotonic()
    if ARGS.resume:
        query, first = resumed(spark, list(tables.values()))
    else:
        for table in tables.values():
            spark.sql(
                f"CREATE TABLE {table} ({SCHEMA}) USING iceberg PARTITIONED BY (hours(event_ts)) "
                "TBLPROPERTIES ('format-version'='2')"
            )
            spark.sql(f"ALTER TABLE {table} WRITE ORDERED BY pseudonym")
        query, first = str(uuid.uuid4()), 0
    for index in range(first, ARGS.batches):
        frame = batch(spark, index).cache()
        for table in tables.values():
            append_once(frame, table, query, index)  # skips a batch the table has (a resumed run's first)
        frame.unpersist()
        if index % 50 == 49:
            print(
                f"bench:maintenance: {index + 1}/{ARGS.batches} micro-batches appended "
                f"({time.monotonic() - began:.0f} s, load average {os.getloadavg()[0]:.1f})",
                file=sys.stderr,
            )
    build_seconds = time.monotonic() - began
    results: list[tuple[str, str, dict[str, Any]]] = []
    jobs: dict[str, tuple[float, dict[str, Any]]] = {}
    for strategy, table in tables.items():
        results.append((strategy, "before", measure(spark, table)))
        partial(results[-1])
        print(f"bench:maintenance: maintaining {table} ({strategy})", file=sys.stderr)
        jobs[strategy] = maintain(catalog, folder, table, strategy)
        print(
            f"bench:maintenance: {strategy} job {jobs[strategy][0]:.1f} s: {json.dumps(jobs[strategy][1])}",
            file=sys.stderr,
        )
        results.append((strategy, "after", measure(spark, table)))
        partial(results[-1])
    version = spark.version
    spark.stop()

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    print(f"date:    {datetime.now(UTC).isoformat()}")
    print(f"machine: {cpu}, {os.cpu_count()} cores, {platform.system()}/{platform.machine()}")
    print(
        f"runtime: Python {platform.python_version()}, Spark {version} local[2], "
        "Iceberg 1.12.0 (JDBC catalog on SQLite)"
    )
    print(
        f"command: npm run bench:maintenance -- --batches {ARGS.batches} --rows-per-batch {ARGS.rows_per_batch}"
        f"   (two tables of {ARGS.batches * ARGS.rows_per_batch:,} rows, 24 hourly partitions, "
        + (
            f"resumed: {build_seconds:.0f} s of appends in this run)\n"
            if ARGS.resume
            else f"built in {build_seconds:.0f} s)\n"
        )
    )
    headers = [
        "compaction",
        "when",
        "rows",
        "data files",
        "manifests",
        "snapshots",
        "metadata MB",
        *(f"{q} s" for q in QUERIES),
    ]
    rows = [
        [
            strategy,
            when,
            f"{m['rows']:,}",
            f"{m['data files']:,}",
            f"{m['manifests']:,}",
            f"{m['snapshots']:,}",
            f"{m['metadata MB']:.2f}",
            *(f"{m[q]:.3f}" for q in QUERIES),
        ]
        for strategy, when, m in results
    ]
    print_table(headers, rows)
    print()
    step_names = ["compaction", "manifests", "expiry", "metadata", "orphans"]
    print_table(
        [
            "compaction",
            "job wall s (Spark start incl.)",
            *(f"{s} s" for s in step_names),
            "files rewritten",
            "snapshots expired",
        ],
        [
            [
                strategy,
                f"{seconds:.1f}",
                *(f"{report['seconds'].get(s, 0):.1f}" for s in step_names),
                f"{report['compaction']['dataFilesRewritten']:,}",
                f"{report['expiry']['snapshotsExpired']:,}",
            ]
            for strategy, (seconds, report) in jobs.items()
        ],
    )


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.rjust(widths[i]) for i, h in enumerate(headers)) + " |")
    print("|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.rjust(widths[i]) for i, c in enumerate(row)) + " |")


if __name__ == "__main__":
    main()
