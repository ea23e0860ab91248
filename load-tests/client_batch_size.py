"""`npm run bench:batch-size`: the Python client's values/s against the API (cache off, one server process)
for several request sizes, to choose ClientConfig.batch_size's default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "spark-udfs" / "src"))
from spark_udfs import ApiKeySource, ClientConfig, PseudonymizationClient  # noqa: E402

work = Path(tempfile.mkdtemp(prefix="batch-size-"))
env = {**os.environ, "PSEUDO_DATA_DIR": str(work), "PSEUDO_LOG_LEVEL": "warn", "PSEUDO_CACHE_ENTRIES": "0"}
key = json.loads(subprocess.run(["node", "dist/cli.mjs", "apikeys", "create", "--name", "b", "--roles", "pseudonymize", "--out", str(work / "k")], cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout)["secretFile"]
port = 19000 + os.getpid() % 1000
server = subprocess.Popen(["node", "dist/server.mjs"], cwd=ROOT, env={**env, "PSEUDO_PORT": str(port)}, stdout=subprocess.DEVNULL)
try:
    for _ in range(100):
        try:
            if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).ok:
                break
        except requests.RequestException:
            time.sleep(0.1)
    values = [f"VIN{i:014d}" for i in range(1_000_000)]
    print(f"date: {datetime.now(timezone.utc).isoformat()}; machine: {os.cpu_count()} cores; command: npm run bench:batch-size")
    print("| batch size | concurrency | values/s |\n|---:|---:|---:|")
    for concurrency in (1, 4):
        for size in (900, 2000, 5000, 10000):
            client = PseudonymizationClient(ClientConfig(url=f"http://127.0.0.1:{port}", api_key=ApiKeySource(env=None, file=key), batch_size=size, concurrency=concurrency))
            client.pseudonymize("vin", values[:50_000])
            started = time.perf_counter()
            client.pseudonymize("vin", values)
            print(f"| {size:,} | {concurrency} | {len(values) / (time.perf_counter() - started):,.0f} |")
finally:
    server.terminate()
