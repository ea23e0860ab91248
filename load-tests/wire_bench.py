"""`npm run bench:wire`: the Python client against the API, Arrow IPC bodies against JSON bodies, in one run.

The values are held as a pyarrow string array (as a Spark partition holds them) and every one is distinct (the API's
cache is off as well): each format pseudonymizes all of them through `PseudonymizationClient.pseudonymize_array`
with the same batch size and concurrency, the formats interleaved round by round. `--path reidentify` reidentifies
their pseudonyms instead (`reidentify_array`), `--path rewrap` rewraps their pseudonyms of key version 1 after a
rotation to version 2 (`rewrap_array`), as a re-keying job does. Reported per format: values/s
(wall clock, best and median round), the client's own CPU seconds per million values, and the API server's (its
processes' user + system time from /proc, per round). Both formats' answers are checked equal before anything is
printed. On a shared machine the CPU columns are the steadier figures: wall-clock rates move with the load average,
which is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

EXAMPLES = [
    "npm run build && npm run bench:wire",
    "npm run bench:wire -- --values 1000000 --concurrency 4",
    "npm run bench:wire -- --path reidentify",
]


def parse() -> argparse.Namespace:
    # The house layout of bench_cli.parse_arguments (what it measures, how long, examples, exit status) with flags.
    parser = argparse.ArgumentParser(
        prog="npm run bench:wire",
        description=(
            "The Python client against the API (node dist/server.mjs, cache off): values/s with Arrow IPC bodies and\n"
            "with JSON bodies side by side, --values distinct values per round, --concurrency requests at a time."
        ),
        epilog="\n".join(
            [
                "takes: about 1 minute with the defaults; --values 1000000 about 5 minutes",
                "",
                "examples:",
                *(f"  {example}" for example in EXAMPLES),
                "",
                "exit status: 0 done, 1 the run failed, 2 usage error",
            ]
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--values", type=int, default=200_000, help="distinct values per round (default 200000)")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
    parser.add_argument("--batch-size", type=int, default=5000, help="values per request (default 5000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per format, interleaved (default 3)")
    parser.add_argument(
        "--path",
        choices=("pseudonymize", "reidentify", "rewrap"),
        default="pseudonymize",
        help="the route measured (default pseudonymize); reidentify and rewrap take the values' pseudonyms",
    )
    args = parser.parse_args()
    if args.values < 1 or args.rounds < 1 or not 1 <= args.concurrency <= 64 or not 1 <= args.batch_size <= 10_000:
        parser.error("--values and --rounds must be 1 or more, --concurrency 1..64, --batch-size 1..10000")
    return args


ARGS = parse()
ROOT = Path(__file__).resolve().parent.parent
#: The node the API server runs on: the first on PATH, as test_support starts it.
NODE_VERSION = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()
sys.path.insert(0, str(ROOT / "spark-udfs" / "src"))
sys.path.insert(0, str(ROOT / "test" / "python"))  # test_support: servers for tests and benchmarks, not shipped

import pyarrow as pa  # noqa: E402

from spark_udfs import ApiKeySource, ClientConfig, PseudonymizationClient  # noqa: E402
from test_support.servers import ApiServer, api_server, rotate_keys  # noqa: E402


def descendants_cpu_seconds() -> float:
    """User + system CPU seconds of this process's live descendants (the API server and any workers it forked)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, ..., utime (12), stime (13)
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    ours = {os.getpid()}
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in ours and pid not in ours:
                ours.add(pid)
                changed = True
    return sum(times[pid] for pid in ours if pid != os.getpid())


def load_average() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def client_for(api: ApiServer, role: str, wire: Literal["json", "arrow"]) -> PseudonymizationClient:
    key = ApiKeySource(env=None, file=api.key_files[role])
    return PseudonymizationClient(
        ClientConfig(url=api.url, api_key=key, batch_size=ARGS.batch_size, concurrency=ARGS.concurrency, wire=wire)
    )


def wait_for_key_version(api: ApiServer, version: int) -> None:
    """Until the server has loaded the rotated keyring (PSEUDO_KEYRING_REFRESH_SECONDS is 5 here)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with urllib.request.urlopen(api.url + "/readyz", timeout=5) as response:
            if json.load(response).get("keyVersion") == version:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the API did not load key version {version} within 30 s")


def run(client: PseudonymizationClient, inputs: pa.Array) -> pa.Array:
    """One pass of the measured route over `inputs`, its answer column."""
    if ARGS.path == "pseudonymize":
        return client.pseudonymize_array("vin", inputs).pseudonyms
    if ARGS.path == "reidentify":
        return client.reidentify_array("vin", inputs)
    return client.rewrap_array("vin", inputs)[0]


def main() -> int:
    load_at_start = load_average()
    values = pa.array([f"VIN{i:014d}" for i in range(ARGS.values)], pa.string())
    roles = ("pseudonymize",) if ARGS.path == "pseudonymize" else ("pseudonymize", ARGS.path)
    environment = {"PSEUDO_CACHE_ENTRIES": "0", "PSEUDO_KEYRING_REFRESH_SECONDS": "5"}
    with api_server(roles, environment=environment) as api:
        inputs = values
        if ARGS.path != "pseudonymize":
            inputs = client_for(api, "pseudonymize", "arrow").pseudonymize_array("vin", values).pseudonyms
        if ARGS.path == "rewrap":
            rotate_keys(api)
            wait_for_key_version(api, 2)
        wires: tuple[Literal["json", "arrow"], ...] = ("json", "arrow")
        clients = {wire: client_for(api, ARGS.path, wire) for wire in wires}
        for client in clients.values():  # connections, JIT and the server's first requests
            run(client, inputs.slice(0, min(len(inputs), 20_000)))
        seconds: dict[str, list[float]] = {wire: [] for wire in clients}
        cpu: dict[str, list[float]] = {wire: [] for wire in clients}
        server_cpu: dict[str, list[float]] = {wire: [] for wire in clients}
        answers: dict[str, pa.Array] = {}
        for round_number in range(ARGS.rounds):
            order = wires if round_number % 2 == 0 else wires[::-1]
            for wire in order:
                started, started_cpu, started_server = (
                    time.perf_counter(),
                    time.process_time(),
                    descendants_cpu_seconds(),
                )
                answers[wire] = run(clients[wire], inputs)
                seconds[wire].append(time.perf_counter() - started)
                cpu[wire].append(time.process_time() - started_cpu)
                server_cpu[wire].append(descendants_cpu_seconds() - started_server)
                print(
                    f"round {round_number + 1} {wire}: {ARGS.values / seconds[wire][-1]:,.0f} values/s", file=sys.stderr
                )
        if not answers["arrow"].equals(answers["json"]):
            print("the Arrow and JSON answers differ", file=sys.stderr)
            return 1
        if ARGS.path == "reidentify" and not answers["arrow"].equals(values):
            print("the reidentified values are not the values", file=sys.stderr)
            return 1
    load = load_average()
    print(
        f"date: {datetime.now(UTC).isoformat(timespec='seconds')}; machine: {platform.machine()},"
        f" {os.cpu_count()} cores, load average {load_at_start} at the start and {load} at the end (1, 5, 15 min);"
        f" API on Node {NODE_VERSION};"
        f" command: npm run bench:wire -- --path {ARGS.path} --values {ARGS.values}"
        f" --concurrency {ARGS.concurrency} --batch-size {ARGS.batch_size} --rounds {ARGS.rounds}"
    )
    print(
        "| wire | values/s (best) | values/s (median) | client CPU s per 1M values | server CPU s per 1M values |\n"
        "|---|---:|---:|---:|---:|"
    )
    best = {wire: ARGS.values / min(seconds[wire]) for wire in seconds}
    for wire in ("json", "arrow"):
        median = ARGS.values / statistics.median(seconds[wire])
        per_million = statistics.median(cpu[wire]) / ARGS.values * 1e6
        server_per_million = statistics.median(server_cpu[wire]) / ARGS.values * 1e6
        print(f"| {wire} | {best[wire]:,.0f} | {median:,.0f} | {per_million:.2f} | {server_per_million:.2f} |")
    total = {
        wire: (statistics.median(cpu[wire]) + statistics.median(server_cpu[wire])) / ARGS.values * 1e6 for wire in cpu
    }
    print(
        f"Arrow / JSON (best): {best['arrow'] / best['json']:.2f}x; client + server CPU s per 1M values:"
        f" JSON {total['json']:.2f}, Arrow {total['arrow']:.2f}"
        f" ({total['json'] / total['arrow']:.2f}x less with Arrow);"
        f" answers identical on all {ARGS.values:,} values"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
