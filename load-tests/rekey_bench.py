"""`npm run bench:rekey`: re-keying throughput of the rekey-tables job (spark_udfs.rekey.job) on this machine.

One Iceberg table per distinct-value count (`--rows` rows each, `email` holding the pseudonyms of `--distinct`
distinct addresses, written under key version 1 through spark-udfs and the API, node dist/server.mjs). Then the
key is rotated (`keys rotate` on the server's data folder; the server switches within 5 s) and each table is
re-keyed by the job as its own process (`python -m spark_udfs.rekey.job`, local[2]): one UPDATE through
/v1/rewrap, snapshot expiry, the key inventory. Reported per table: the job's whole time (Spark start
included), the table's own time (counts, rewrite, expiry, inventory), the UPDATE's alone (read, rewrap, write,
commit), and rows/s per core over each (local[2]: two cores), to compare with the batch job's pseudonymize rows/s
per core in BENCHMARKS.md.
On a machine others share, wall-clock seconds say little, so each phase's CPU time is measured too: user + system
seconds, from /proc, of every process under this one (the job's Python driver, Spark's JVM and its Python
workers, the API server; sampled every half second, so a process's last half second before it exits can be
missed), and rows per CPU-second ("rows/s per core, CPU") beside the wall-clock figure. Building the tables is the
batch job's pseudonymize path (spark-udfs pseudonymize into Iceberg), so its rows per CPU-second, measured in the
same run, is the comparison under the same load.
The issue's sizes: --rows 10000000 --distinct 10000 --distinct 10000000.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

EXAMPLES = [
    "npm run build && npm run bench:rekey",
    "npm run bench:rekey -- --rows 10000000 --distinct 10000 --distinct 10000000",
]


def parse() -> argparse.Namespace:
    # The house layout of bench_cli.parse_arguments (what it measures, how long, examples, exit status) with the
    # sizes as flags.
    parser = argparse.ArgumentParser(
        prog="npm run bench:rekey",
        description=(
            "Re-keying throughput: rows/s per core of the rekey-tables job (one UPDATE through /v1/rewrap, expiry,\n"
            "key inventory) on tables of --rows rows with --distinct distinct pseudonyms, after a key rotation."
        ),
        epilog="\n".join(
            [
                "takes: about 2 minutes with the defaults; the issue's sizes (10,000,000 rows) take far longer",
                "",
                "examples:",
                *(f"  {example}" for example in EXAMPLES),
                "",
                "exit status: 0 done, 1 the run failed, 2 usage error",
            ]
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=200_000, help="rows per table (default 200000)")
    parser.add_argument(
        "--distinct",
        type=int,
        action="append",
        help="distinct values in a table, one table per flag (default: 1000 and --rows)",
    )
    args = parser.parse_args()
    if args.rows < 1 or any(d < 1 or d > args.rows for d in args.distinct or []):
        parser.error("--rows must be 1 or more and each --distinct between 1 and --rows")
    return args


ARGS = parse()
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "spark-udfs" / "src"))
sys.path.insert(0, str(ROOT / "test" / "python"))  # test_support: servers for tests and benchmarks, not shipped

import requests  # noqa: E402

from spark_udfs import ApiKeySource, ClientConfig, pseudonymize  # noqa: E402
from spark_udfs.jobs.session import CatalogConfig, build_session  # noqa: E402
from test_support.servers import api_server, rotate_keys  # noqa: E402
from test_support.spark import use_local_jars  # noqa: E402

use_local_jars()


class TreeCpu:
    """User + system CPU seconds of this process and every process under it, from /proc, sampled by a thread;
    keyed by (pid, start time) so a reused pid is not mistaken for an earlier process."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.tick = os.sysconf("SC_CLK_TCK")
        self.seen: dict[tuple[int, int], float] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopped.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        processes: dict[int, tuple[int, int, float]] = {}  # pid -> (parent, start, cpu seconds)
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            # After the command's ")": state ppid ... utime(11) stime(12) ... starttime(19), 0-based.
            processes[int(entry)] = (int(fields[1]), int(fields[19]), (int(fields[11]) + int(fields[12])) / self.tick)
        children: dict[int, list[int]] = {}
        for pid, (parent, _, _) in processes.items():
            children.setdefault(parent, []).append(pid)
        tree, todo = [], [os.getpid()]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo.extend(children.get(pid, []))
        with self.lock:
            for pid in tree:
                if pid in processes:
                    _, start, cpu = processes[pid]
                    self.seen[(pid, start)] = max(cpu, self.seen.get((pid, start), 0.0))

    @contextmanager
    def phase(self) -> Iterator[list[float]]:
        """Yields a list that holds, once the block ends, the CPU seconds the tree used during it."""
        self.sample()
        with self.lock:
            before = dict(self.seen)
        used: list[float] = []
        try:
            yield used
        finally:
            self.sample()
            with self.lock:
                used.append(sum(cpu - before.get(key, 0.0) for key, cpu in self.seen.items()))

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


def main() -> None:
    rows: int = ARGS.rows
    distincts: list[int] = ARGS.distinct or sorted({min(1000, rows), rows})
    folder = tempfile.mkdtemp(prefix="rekey-bench-")
    try:
        run(folder, rows, distincts)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(folder: str, rows: int, distincts: list[int]) -> None:
    catalog = CatalogConfig(uri=f"{folder}/catalog.db", warehouse=f"{folder}/warehouse")
    results: list[list[str]] = []
    built: list[list[str]] = []
    cpu_time = TreeCpu()
    with api_server(("pseudonymize", "rewrap"), {"PSEUDO_KEYRING_REFRESH_SECONDS": "5"}) as api:
        client_config = ClientConfig(url=api.url, api_key=ApiKeySource(env=None, file=api.key_files["pseudonymize"]))
        spark = build_session(catalog, app_name="rekey-bench", master="local[2]")
        spark.sparkContext.setLogLevel("ERROR")
        from pyspark.sql import functions as F

        started = time.monotonic()
        tables = {}
        for distinct in distincts:
            table = f"local.bench.rekey_{distinct}"
            spark.sql(f"CREATE TABLE {table} (id bigint, email string, amount double) USING iceberg")
            data = spark.range(0, rows).select(
                F.col("id"),
                F.format_string("person%08d@example.com", ((F.col("id") * 7919) % distinct).cast("int")).alias("email"),
                (F.col("id") % 1000 / 10).alias("amount"),
            )
            began = time.monotonic()
            with cpu_time.phase() as used:
                pseudonymize(data, {"email": "email"}, client_config).writeTo(table).append()
            seconds = time.monotonic() - began
            tables[table] = distinct
            built.append(
                [
                    f"{rows:,}",
                    f"{distinct:,}",
                    f"{seconds:.1f}",
                    f"{used[0]:.1f}",
                    f"{rows / seconds / 2:,.0f}",
                    f"{rows / used[0]:,.0f}",
                ]
            )
            print(f"built {table}:", " | ".join(built[-1]), file=sys.stderr, flush=True)
        build_seconds = time.monotonic() - started
        version = spark.version
        spark.stop()

        rotate_keys(api)
        key = Path(api.key_files["pseudonymize"]).read_text().strip()
        deadline = time.monotonic() + 60
        while (
            requests.post(
                api.url + "/v1/pseudonymize", json={"context": "email", "values": ["probe"]}, headers={"x-api-key": key}
            ).json()["keyVersion"]
            != 2
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not switch to key version 2")
            time.sleep(0.5)

        registry, api_file = Path(folder) / "registry.json", Path(folder) / "api.json"
        api_file.write_text(json.dumps({"api": {"url": api.url, "apiKeyFile": api.key_files["rewrap"]}}))
        for table, distinct in tables.items():
            registry.write_text(
                json.dumps(
                    {
                        "catalog": {
                            "name": "local",
                            "type": "jdbc",
                            "uri": catalog.uri,
                            "warehouse": catalog.warehouse,
                        },
                        "tables": [{"name": table, "columns": {"email": "email"}}],
                    }
                )
            )
            began = time.monotonic()
            with cpu_time.phase() as used:
                done = subprocess.run(
                    [
                        *(sys.executable, "-m", "spark_udfs.rekey.job", "--registry", str(registry)),
                        *("--api", str(api_file), "--master", "local[2]", "--orphan-grace-seconds", "0"),
                    ],
                    env={**os.environ, "PYSPARK_PYTHON": sys.executable},
                    capture_output=True,
                    text=True,
                )
            seconds = time.monotonic() - began
            if done.returncode != 0:
                raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
            report = json.loads(done.stdout)["tables"][0]
            column = report["columns"]["email"]
            table_seconds = float(report["seconds"])
            rewrite_seconds = float(report["stepSeconds"]["rewrite"])
            results.append(
                [
                    f"{rows:,}",
                    f"{distinct:,}",
                    f"{int(column['rowsRewritten']):,}",
                    f"{int(report['distinctValuesRewrapped']):,}",
                    ",".join(str(v) for v in column["keyVersionsRemaining"]),
                    str(report["snapshotsExpired"]),
                    f"{seconds:.1f}",
                    f"{table_seconds:.1f}",
                    f"{rewrite_seconds:.1f}",
                    f"{int(column['rowsRewritten']) / table_seconds / 2:,.0f}",
                    f"{int(column['rowsRewritten']) / rewrite_seconds / 2:,.0f}",
                    f"{used[0]:.1f}",
                    f"{int(column['rowsRewritten']) / used[0]:,.0f}",
                ]
            )
            print(
                " | ".join(results[-1]), "| steps (s):", json.dumps(report["stepSeconds"]), file=sys.stderr, flush=True
            )

    with open("/proc/cpuinfo", encoding="utf-8") as info:
        cpu = next(
            (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), platform.processor()
        )
    print(f"date:    {datetime.now(UTC).isoformat()}")
    print(f"machine: {cpu}, {os.cpu_count()} cores, {platform.system()}/{platform.machine()}")
    print(f"runtime: Python {platform.python_version()}, Spark {version} local[2], Iceberg (JDBC catalog on SQLite)")
    print(f"command: npm run bench:rekey -- --rows {rows}{''.join(f' --distinct {d}' for d in distincts)}")
    print(f"         (tables built in {build_seconds:.0f} s under key version 1; re-keyed to version 2)")
    print(f"load:    {' '.join(f'{x:.1f}' for x in os.getloadavg())} (1, 5, 15 min) at the end\n")
    cpu_time.stop()
    print("Building the tables (the batch job's path: spark-udfs pseudonymize (mapInArrow) -> Iceberg):\n")
    table_out(["rows", "distinct", "seconds", "CPU s", "rows/s per core (wall, 2)", "rows/s per core (CPU)"], built)
    print("\nRe-keying them (rekey-tables, one process per table; CPU: the job's processes and the API server):\n")
    headers = [
        "rows",
        "distinct",
        "rows rewritten",
        "values rewrapped",
        "versions left",
        "snapshots expired",
        "seconds (whole job)",
        "seconds (table)",
        "seconds (UPDATE)",
        "rows/s per core (table)",
        "rows/s per core (UPDATE)",
        "CPU s (whole job)",
        "rows/s per core (CPU, whole job)",
    ]
    table_out(headers, results)


def table_out(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.rjust(widths[i]) for i, h in enumerate(headers)) + " |")
    print("|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.rjust(widths[i]) for i, c in enumerate(row)) + " |")


if __name__ == "__main__":
    main()
