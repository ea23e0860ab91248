"""`npm run bench:stream`: the streaming job end to end, sustained records/s and latency, 10 s trigger.

Two pipelines, each run at offered rates for BENCH_STREAM_SECONDS (default 60) plus the time to drain:
- **through Kinesis**: the producer CLI (`npm run produce -- --generate N --rate R`) puts the generator's
  records (dept_id, vin, example_ts, producedAt) into a 4-shard stream of the local moto server, and the
  job reads them with its Kinesis source. The job is the same code as `stream-consumer`, run in this
  process (start_query), against the API (node dist/server.mjs, one process) on the same two cores.
- **without the Kinesis emulator**: Spark's `rate` source makes the same JSON records at R/s, fed to the
  same micro-batch code (parse, pseudonymize `vin` through the API, exactly-once Iceberg append). moto is a
  single Python process; this run shows what the job itself sustains on this machine.

Latency per row: the commit time of the Iceberg snapshot that made it visible minus its `producedAt`;
read from the table's manifests (which snapshot added which data file) and the files' producedAt column.
rows/s is rows over (last commit - first record produced), so it includes the final trigger wait. "Kept up"
means every record arrived in the table and p95 latency stayed within 2 x the trigger interval.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from bench_cli import parse_arguments  # load-tests/, this script's folder

parse_arguments(
    "npm run bench:stream",
    "The streaming job end to end (10 s trigger): sustained records/s and produced-to-visible latency, "
    "through Kinesis\n"
    "on a local moto server at each BENCH_KINESIS_RATES rate, and from Spark's rate source at each\n"
    "BENCH_RATE_SOURCE_RATES rate.",
    "about 8 minutes with the defaults (BENCH_STREAM_SECONDS per rate plus draining)",
    [
        ("BENCH_STREAM_SECONDS", "seconds each rate is offered (default 60)"),
        ("BENCH_KINESIS_RATES", "records/s through Kinesis (default 2000,5000,10000)"),
        ("BENCH_RATE_SOURCE_RATES", "records/s from the rate source (default 20000,40000)"),
    ],
    ["npm run build && npm run bench:stream", "BENCH_STREAM_SECONDS=20 BENCH_KINESIS_RATES=2000 npm run bench:stream"],
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "spark-udfs" / "src"))
sys.path.insert(0, str(ROOT / "test" / "python"))  # test_support: servers for tests and benchmarks, not shipped
sys.path.insert(0, str(ROOT / "stream-consumer" / "src"))

for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "eu-west-1",
}.items():
    os.environ.setdefault(_name, _value)

from spark_udfs.jobs.session import CatalogConfig, build_session  # noqa: E402
from stream_consumer.job import parse_config, source_reader, start_query  # noqa: E402
from test_support.servers import ApiServer, api_server, moto_server  # noqa: E402
from test_support.spark import use_local_jars  # noqa: E402

use_local_jars()

SECONDS = int(os.environ.get("BENCH_STREAM_SECONDS", "60"))
TRIGGER = 10
KINESIS_RATES = [int(r) for r in os.environ.get("BENCH_KINESIS_RATES", "2000,5000,10000").split(",")]
RATE_SOURCE_RATES = [int(r) for r in os.environ.get("BENCH_RATE_SOURCE_RATES", "20000,40000").split(",")]


def job_config(api: ApiServer, catalog: CatalogConfig, stream: str, endpoint: str, folder: str) -> dict[str, Any]:
    return {
        "source": {"streamName": stream, "region": "eu-west-1", "endpointUrl": endpoint, "maxRecordsPerShard": 500_000},
        "schema": {
            "fields": {"dept_id": "int", "vin": "string", "example_ts": "timestamp", "producedAt": "timestamp"},
            "required": ["vin"],
        },
        "columns": {"vin": "vin"},
        "api": {"url": api.url, "apiKeyFile": api.key_files["pseudonymize"]},
        "catalog": {"uri": catalog.uri, "warehouse": catalog.warehouse},
        "table": {"name": f"local.bench.{stream}"},
        "checkpointLocation": f"{folder}/checkpoint-{stream}",
        "triggerSeconds": TRIGGER,
    }


def latencies(catalog: CatalogConfig, table: str) -> tuple[np.ndarray, float, float]:
    """Per-row latency (s), first producedAt and last commit (epoch s), from the table's metadata and files."""
    from pyiceberg.catalog.sql import SqlCatalog

    loaded = SqlCatalog("local", uri=f"sqlite:///{catalog.uri}", warehouse=f"file://{catalog.warehouse}").load_table(
        table.split(".", 1)[1]
    )
    committed = {row["snapshot_id"]: row["committed_at"].timestamp() for row in loaded.inspect.snapshots().to_pylist()}
    parts: list[np.ndarray] = []
    first_produced = float("inf")
    last_commit = 0.0
    for entry in loaded.inspect.entries().to_pylist():
        produced = pq.read_table(
            entry["data_file"]["file_path"].removeprefix("file://"), columns=["producedAt"]
        ).column("producedAt")
        seconds = pc.divide(
            pc.cast(pc.cast(produced, pa.timestamp("us", tz="UTC")), pa.int64()), 1_000_000.0
        ).to_numpy()
        commit = committed[entry["snapshot_id"]]
        parts.append(commit - seconds)
        first_produced = min(first_produced, float(seconds.min()))
        last_commit = max(last_commit, commit)
    return np.concatenate(parts), first_produced, last_commit


def summarize(name: str, offered: int, expected: int, catalog: CatalogConfig, table: str) -> list[str]:
    values, first, last = latencies(catalog, table)
    p95 = float(np.percentile(values, 95))
    kept_up = len(values) == expected and p95 <= 2 * TRIGGER
    return [
        name,
        f"{offered:,}",
        f"{len(values):,}",
        f"{len(values) / max(last - first, 1e-9):,.0f}",
        f"{np.percentile(values, 50):.1f}",
        f"{p95:.1f}",
        f"{values.max():.1f}",
        "yes"
        if kept_up
        else f"no ({expected - len(values):,} of {expected:,} missing)"
        if len(values) != expected
        else "no (p95 > 2 x trigger)",
    ]


def wait_for_rows(spark: Any, table: str, expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if spark.table(table).count() >= expected:
            return
        time.sleep(2)


def through_kinesis(
    spark: Any, api: ApiServer, catalog: CatalogConfig, endpoint: str, folder: str, rate: int
) -> list[str]:
    stream = f"kinesis_{rate}"
    kinesis = boto3.client("kinesis", region_name="eu-west-1", endpoint_url=endpoint)
    kinesis.create_stream(StreamName=stream, ShardCount=4)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream)
    config = parse_config(job_config(api, catalog, stream, endpoint, folder))
    query = start_query(spark, config, source_reader(spark, config.source).load())
    count = rate * SECONDS
    try:
        producer = subprocess.run(
            [
                str(ROOT / "node_modules" / ".bin" / "tsx"),
                "stream-consumer/producer/main.ts",
                "--stream",
                stream,
                "--generate",
                str(count),
                "--rate",
                str(rate),
                "--endpoint",
                endpoint,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if producer.returncode != 0:
            raise RuntimeError(f"the producer failed: {producer.stderr[-500:]}")
        wait_for_rows(spark, config.table, count, 6 * TRIGGER + SECONDS)
    finally:
        query.stop()
    return summarize("Kinesis (moto) -> job -> Iceberg", rate, count, catalog, config.table)


def without_emulator(spark: Any, api: ApiServer, catalog: CatalogConfig, folder: str, rate: int) -> list[str]:
    from pyspark.sql import functions as F

    config = parse_config(job_config(api, catalog, f"rate_{rate}", "http://127.0.0.1:9", folder))
    index = F.col("value")
    vin = F.concat(F.lit("VIN"), F.lpad(((index * 2654435761) % 10_000).cast("string"), 14, "0"))
    record = F.to_json(
        F.struct(
            (index * 40503 % 50).cast("int").alias("dept_id"),
            vin.alias("vin"),
            F.lit("2026-01-01T00:00:00Z").alias("example_ts"),
            F.col("timestamp").alias("producedAt"),
        )
    )
    source = (
        spark.readStream.format("rate")
        .option("rowsPerSecond", rate)
        .option("numPartitions", 2)
        .load()
        .select(
            record.cast("binary").alias("data"),
            index.cast("string").alias("sequenceNumber"),
            F.col("timestamp").alias("approximateArrivalTimestamp"),
        )
    )
    query = start_query(spark, config, source)
    try:
        time.sleep(SECONDS)
    finally:
        query.stop()
    # Rows of the batches that completed (the one in flight at stop() is not committed, by design).
    completed = sum(int(progress["numInputRows"]) for progress in query.recentProgress)
    return summarize("rate source -> job -> Iceberg", rate, completed, catalog, config.table)


def main() -> None:
    folder = tempfile.mkdtemp(prefix="stream-bench-")
    catalog = CatalogConfig(uri=f"{folder}/catalog.db", warehouse=f"{folder}/warehouse")
    results: list[list[str]] = []
    with moto_server() as endpoint, api_server(("pseudonymize",), {"PSEUDO_LOG_LEVEL": "warn"}) as api:
        spark = build_session(catalog, app_name="stream-bench", master="local[2]")
        spark.sparkContext.setLogLevel("ERROR")
        try:
            with contextlib.redirect_stdout(sys.stderr):  # the job's JSON progress lines
                for rate in KINESIS_RATES:
                    results.append(through_kinesis(spark, api, catalog, endpoint, folder, rate))
                    print(" | ".join(results[-1]))
                for rate in RATE_SOURCE_RATES:
                    results.append(without_emulator(spark, api, catalog, folder, rate))
                    print(" | ".join(results[-1]))
            version = spark.version
        finally:
            spark.stop()
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    cpu = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), platform.processor()
    )
    print(f"date:    {datetime.now(UTC).isoformat()}")
    print(f"machine: {cpu}, {os.cpu_count()} cores, {platform.system()}/{platform.machine()}")
    print(
        f"runtime: Python {platform.python_version()}, Spark {version} local[2], "
        "Iceberg 1.12.0 (JDBC catalog on SQLite), API node dist/server.mjs (1 process), "
        "moto server (1 Python process), all on the same cores"
    )
    print(
        f"command: npm run bench:stream   (trigger {TRIGGER} s, {SECONDS} s per run, 4 shards, "
        "vin from 10,000 distinct values)\n"
    )
    headers = ["pipeline", "offered rec/s", "rows", "rows/s produced->visible", "p50 s", "p95 s", "max s", "kept up"]
    widths = [max(len(h), *(len(r[i]) for r in results)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(widths[i]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(headers)) + " |")
    print(
        "|" + "|".join((":" + "-" * (w + 1)) if i == 0 else ("-" * (w + 1) + ":") for i, w in enumerate(widths)) + "|"
    )
    for row in results:
        print("| " + " | ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)) + " |")


if __name__ == "__main__":
    main()
