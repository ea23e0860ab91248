"""`npm run bench:erasure`: time to erase 1 and 100 subjects from a 10-million-row Iceberg table with 50 snapshots.

Two identical tables are built (BENCH_ERASURE_ROWS rows, default 10,000,000, in 50 appends, so 50 snapshots;
`email` holds the pseudonyms of 1,000,000 distinct addresses, about 10 rows each, spread over the appends),
with the pseudonyms from the API (node dist/server.mjs) through spark-udfs. Then the erasure job runs as
the service's local runner starts it (`python -m spark_udfs.erasure.job`, its own Spark in local[2]): once
for 1 subject on the first table, once for 100 subjects on the second. Each run's time covers the whole job:
Spark start, DELETE, rewrites, expiry, orphan and metadata clean-up, and the verification (every file under
the table location decoded and searched, time travel, counts).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench_cli import parse_arguments  # load-tests/, this script's folder

parse_arguments(
    "npm run bench:erasure",
    "Time to erase 1 and 100 subjects from a 10-million-row Iceberg table with 50 snapshots: the whole erasure job\n"
    "(python -m spark_udfs.erasure.job, local[2]) as the service's local runner starts it, verification included.",
    "about 5 minutes with the defaults, most of it building the two tables",
    [("BENCH_ERASURE_ROWS", "rows per table (default 10000000)")],
    ["npm run build && npm run bench:erasure", "BENCH_ERASURE_ROWS=1000000 npm run bench:erasure"],
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "spark-udfs" / "src"))
sys.path.insert(0, str(ROOT / "test" / "python"))  # test_support: servers for tests and benchmarks, not shipped

from spark_udfs import ApiKeySource, ClientConfig, PseudonymizationClient, pseudonymize  # noqa: E402
from spark_udfs.jobs.session import CatalogConfig, build_session  # noqa: E402
from test_support.servers import api_server  # noqa: E402
from test_support.spark import use_local_jars  # noqa: E402

use_local_jars()

ROWS = int(os.environ.get("BENCH_ERASURE_ROWS", "10000000"))
SNAPSHOTS = 50
DISTINCT = 1_000_000


def email(i: int) -> str:
    return f"person{i:07d}@example.com"


def main() -> None:
    folder = tempfile.mkdtemp(prefix="erasure-bench-")
    catalog = CatalogConfig(uri=f"{folder}/catalog.db", warehouse=f"{folder}/warehouse")
    results: list[list[str]] = []
    with api_server(("pseudonymize",)) as api:
        client_config = ClientConfig(url=api.url, api_key=ApiKeySource(env=None, file=api.key_files["pseudonymize"]))
        spark = build_session(catalog, app_name="erasure-bench", master="local[2]")
        spark.sparkContext.setLogLevel("ERROR")
        from pyspark.sql import functions as F

        started = time.monotonic()
        per_append = ROWS // SNAPSHOTS
        for table in ("local.bench.erase_one", "local.bench.erase_hundred"):
            spark.sql(
                f"CREATE TABLE {table} (id bigint, email string, amount double) USING iceberg "
                "TBLPROPERTIES ('format-version'='2', 'write.metadata.metrics.column.email'='none')"
            )
            for snapshot in range(SNAPSHOTS):
                rows = spark.range(snapshot * per_append, (snapshot + 1) * per_append).select(
                    F.col("id"),
                    F.format_string("person%07d@example.com", ((F.col("id") * 7919) % DISTINCT).cast("int")).alias(
                        "email"
                    ),
                    (F.col("id") % 1000 / 10).alias("amount"),
                )
                pseudonymize(rows, {"email": "email"}, client_config).writeTo(table).append()
        build_seconds = time.monotonic() - started
        version = spark.version
        spark.stop()

        client = PseudonymizationClient(client_config)
        for table, count in (("local.bench.erase_one", 1), ("local.bench.erase_hundred", 100)):
            subjects = client.pseudonymize("email", [email(i * 9973 % DISTINCT) for i in range(count)])
            order = {
                "runId": f"bench-{count}",
                "requestIds": [f"er-bench-{count}"],
                "subjects": [{"context": "email", "pseudonyms": [p]} for p in subjects],
                "tables": [{"name": table, "columns": {"email": "email"}}],
                "catalog": {"name": "local", "type": "jdbc", "uri": catalog.uri, "warehouse": catalog.warehouse},
                "orphanGraceSeconds": 0,
            }
            order_file, certificate_file = (
                Path(folder) / f"order-{count}.json",
                Path(folder) / f"certificate-{count}.json",
            )
            order_file.write_text(json.dumps(order))
            began = time.monotonic()
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "spark_udfs.erasure.job",
                    "--order",
                    str(order_file),
                    "--certificate",
                    str(certificate_file),
                    "--master",
                    "local[2]",
                ],
                env={**os.environ, "PYSPARK_PYTHON": sys.executable},
                capture_output=True,
                text=True,
            )
            seconds = time.monotonic() - began
            if done.returncode != 0:
                raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
            report = json.loads(certificate_file.read_text())["tables"][0]
            verification = report["verification"]
            results.append(
                [
                    str(count),
                    f"{ROWS:,}",
                    str(SNAPSHOTS),
                    # 64-bit values travel as decimal strings (contracts/erasure-certificate.schema.json)
                    f"{int(report['rowsDeleted']):,}",
                    str(report["filesDeletedByExpiry"].get("deleted_data_files_count", 0)),
                    f"{int(verification['filesScanned']):,}",
                    f"{int(verification['bytesScanned']) / 1e6:,.0f}",
                    verification["result"],
                    f"{seconds:.1f}",
                ]
            )
            print(" | ".join(results[-1]), file=sys.stderr)

    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    cpu = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), platform.processor()
    )
    print(f"date:    {datetime.now(UTC).isoformat()}")
    print(f"machine: {cpu}, {os.cpu_count()} cores, {platform.system()}/{platform.machine()}")
    print(
        f"runtime: Python {platform.python_version()}, Spark {version} local[2], "
        "Iceberg 1.12.0 (JDBC catalog on SQLite)"
    )
    print(
        f"command: npm run bench:erasure   (tables built in {build_seconds:.0f} s; "
        f"email from {DISTINCT:,} distinct addresses)\n"
    )
    headers = [
        "subjects",
        "rows",
        "snapshots",
        "rows deleted",
        "data files expired",
        "files scanned",
        "MB scanned",
        "verification",
        "seconds (whole job)",
    ]
    widths = [max(len(h), *(len(r[i]) for r in results)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.rjust(widths[i]) for i, h in enumerate(headers)) + " |")
    print("|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    for row in results:
        print("| " + " | ".join(c.rjust(widths[i]) for i, c in enumerate(row)) + " |")


if __name__ == "__main__":
    main()
