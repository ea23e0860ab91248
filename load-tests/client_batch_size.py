"""`npm run bench:batch-size`: the Python client's values/s against the API (cache off, one server process)
for several request sizes, to choose ClientConfig.batch_size's default."""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench_cli import parse_arguments  # load-tests/, this script's folder

parse_arguments(
    "npm run bench:batch-size",
    "The Python client's values/s against the API (cache off, one server process) for request sizes 900, 2,000, 5,000\n"
    "and 10,000 at concurrency 1 and 4: 1,000,000 values per row, to choose ClientConfig.batch_size's default.",
    "about 2 to 4 minutes (eight rows of 1,000,000 values, plus starting the API)",
    examples=["npm run build && npm run bench:batch-size"],
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "spark-udfs" / "src"))
sys.path.insert(0, str(ROOT / "test" / "python"))  # test_support: servers for tests and benchmarks, not shipped
from spark_udfs import ApiKeySource, ClientConfig, PseudonymizationClient  # noqa: E402
from test_support.servers import api_server  # noqa: E402

with api_server(environment={"PSEUDO_CACHE_ENTRIES": "0"}) as api:
    key = api.key_files["pseudonymize"]
    values = [f"VIN{i:014d}" for i in range(1_000_000)]
    print(f"date: {datetime.now(UTC).isoformat()}; machine: {os.cpu_count()} cores; command: npm run bench:batch-size")
    print("| batch size | concurrency | values/s |\n|---:|---:|---:|")
    for concurrency in (1, 4):
        for size in (900, 2000, 5000, 10000):
            client = PseudonymizationClient(
                ClientConfig(
                    url=api.url, api_key=ApiKeySource(env=None, file=key), batch_size=size, concurrency=concurrency
                )
            )
            client.pseudonymize("vin", values[:50_000])
            started = time.perf_counter()
            client.pseudonymize("vin", values)
            print(f"| {size:,} | {concurrency} | {len(values) / (time.perf_counter() - started):,.0f} |")
