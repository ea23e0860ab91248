"""Real components for the spark-udfs tests, started here and always stopped: the API server
(`node dist/server.mjs`) on a free 127.0.0.1 port with its own data folder and API keys, a local Spark
session with the Iceberg runtime and a JDBC catalog on SQLite, and a fault-injecting HTTP proxy."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from pyspark.sql import SparkSession

from spark_udfs import ApiKeySource, ClientConfig
from spark_udfs.jobs.session import PROJECT_ROOT, CatalogConfig, build_session
from spark_udfs.testing import api_server, moto_server

ROOT = Path(PROJECT_ROOT)


@dataclass(frozen=True)
class Api:
    url: str
    pseudonymize_key_file: str
    reidentify_key_file: str

    def client(self, url: str | None = None, key: str = "pseudonymize", **options: object) -> ClientConfig:
        key_file = self.pseudonymize_key_file if key == "pseudonymize" else self.reidentify_key_file
        return ClientConfig(url=url or self.url, api_key=ApiKeySource(env=None, file=key_file), **options)  # type: ignore[arg-type]

    def call(self, path: str, body: dict[str, object], key: str = "pseudonymize") -> dict[str, object]:
        key_file = self.pseudonymize_key_file if key == "pseudonymize" else self.reidentify_key_file
        with open(key_file, encoding="utf-8") as handle:
            api_key = handle.read().strip()
        answer = requests.post(self.url + path, json=body, headers={"x-api-key": api_key}, timeout=30)
        answer.raise_for_status()
        result: dict[str, object] = answer.json()
        return result


@pytest.fixture(scope="session")
def api() -> Iterator[Api]:
    if not (ROOT / "dist" / "server.mjs").exists():
        subprocess.run([str(ROOT / "node_modules" / ".bin" / "tsx"), "scripts/build.ts"], cwd=ROOT, check=True, capture_output=True)
    with api_server(("pseudonymize", "reidentify"), {"PSEUDO_POLICY_FILE": str(ROOT / "test" / "fixtures" / "policies.json")}) as server:
        yield Api(server.url, server.key_files["pseudonymize"], server.key_files["reidentify"])


@pytest.fixture(scope="session")
def warehouse() -> Iterator[CatalogConfig]:
    folder = tempfile.mkdtemp(prefix="spark-udfs-iceberg-")
    yield CatalogConfig(name="local", type="jdbc", uri=f"{folder}/catalog.db", warehouse=f"{folder}/warehouse")
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def spark(warehouse: CatalogConfig) -> Iterator[SparkSession]:
    session = build_session(warehouse, app_name="spark-udfs-tests", master="local[2]")
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


class FaultProxy:
    """Forwards to the API; answers a share of POSTs with 503, 429 (Retry-After: 0) or a dropped connection."""

    def __init__(self, upstream: str, *, errors: float = 0.0, throttles: float = 0.0, drops: float = 0.0, fail_all_posts: bool = False, seed: int = 7) -> None:
        self.upstream = upstream
        self.rates = (drops, errors, throttles)
        self.fail_all_posts = fail_all_posts
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.counts = {"forwarded": 0, "503": 0, "429": 0, "dropped": 0}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                answer = requests.get(proxy.upstream + self.path, timeout=30)
                self._relay(answer.status_code, answer.headers.get("content-type", "application/json"), answer.content)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with proxy.lock:
                    roll = proxy.random.random()
                drops, errors, throttles = proxy.rates
                if proxy.fail_all_posts or drops <= roll < drops + errors:
                    proxy._count("503")
                    self._relay(503, "application/problem+json", b'{"type":"urn:test:unavailable","title":"injected","status":503}')
                elif roll < drops:
                    proxy._count("dropped")
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                elif roll < drops + errors + throttles:
                    proxy._count("429")
                    self._relay(429, "application/problem+json", b'{"type":"urn:test:throttled","title":"injected","status":429}', {"retry-after": "0"})
                else:
                    proxy._count("forwarded")
                    headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "x-api-key")}
                    answer = requests.post(proxy.upstream + self.path, data=body, headers=headers, timeout=30)
                    self._relay(answer.status_code, answer.headers.get("content-type", "application/json"), answer.content)

            def _relay(self, status: int, content_type: str, body: bytes, extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                for name, value in (extra or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _count(self, what: str) -> None:
        with self.lock:
            self.counts[what] += 1

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *args: object) -> None:
        self.server.shutdown()
        self.server.server_close()



@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint
