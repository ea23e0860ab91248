"""Servers for the Python tests and benchmarks: the one way to start a local AWS endpoint (moto's server
from the project venv), the pseudonymization API (`node dist/server.mjs` with API keys made by its CLI) and
a fault-injecting proxy in front of it, each on a free 127.0.0.1 port and always stopped."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from . import ROOT, SUPPORT_PATH


def support_python_path() -> str:
    """PYTHONPATH for a child process that imports test_support (kept in front of what is already set)."""
    return os.pathsep.join(p for p in (str(SUPPORT_PATH), os.environ.get("PYTHONPATH", "")) if p)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, what: str) -> None:
    """Returns once `url` answers at all (any status); 30 s at most."""
    deadline = time.time() + 30
    while True:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            if time.time() > deadline:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.1)


@dataclass(frozen=True)
class ApiServer:
    url: str
    #: role -> file holding a new API key with only that role
    key_files: Mapping[str, str]
    #: PSEUDO_DATA_DIR of the server (its keyring), for the CLI: `rotate_keys`
    data_dir: str = ""


@contextmanager
def api_server(
    roles: tuple[str, ...] = ("pseudonymize",), environment: Mapping[str, str] | None = None
) -> Iterator[ApiServer]:
    """Starts the built API (run `npm run build` first) with its own data folder and one API key per role."""
    data_dir = tempfile.mkdtemp(prefix="pseudo-api-")
    env = {**os.environ, "PSEUDO_DATA_DIR": data_dir, "PSEUDO_LOG_LEVEL": "warn", **(environment or {})}
    # The keyring first: the service creates none once API keys exist (a new one would orphan their pseudonyms).
    subprocess.run(["node", "dist/cli.mjs", "keys", "create"], cwd=ROOT, env=env, check=True, capture_output=True)
    if env.get("PSEUDO_ERASURE_REGISTRY_FILE") and env.get("PSEUDO_ERASURE_LEDGER", "sqlite") == "sqlite":
        # Likewise the erasure ledger: a start that finds a keyring but no ledger refuses to make one (it may be lost).
        subprocess.run(["node", "dist/cli.mjs", "audit", "init"], cwd=ROOT, env=env, check=True, capture_output=True)
    key_files = {}
    for role in roles:
        out = subprocess.run(
            [
                "node",
                "dist/cli.mjs",
                "apikeys",
                "create",
                "--name",
                f"test-{role}",
                "--roles",
                role,
                "--out",
                f"{data_dir}/{role}.key",
            ],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        key_files[role] = json.loads(out.stdout)["secretFile"]
    port = free_port()
    server = subprocess.Popen(
        ["node", "dist/server.mjs"],
        cwd=ROOT,
        env={**env, "PSEUDO_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url + "/readyz", "the API server")
        yield ApiServer(url, key_files, data_dir)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


def rotate_keys(server: ApiServer) -> None:
    """`keys rotate` on the server's data folder: a new active version (the server loads it within its
    PSEUDO_KEYRING_REFRESH_SECONDS)."""
    env = {**os.environ, "PSEUDO_DATA_DIR": server.data_dir}
    subprocess.run(["node", "dist/cli.mjs", "keys", "rotate"], cwd=ROOT, env=env, check=True, capture_output=True)


@contextmanager
def started_api(
    roles: tuple[str, ...] = ("pseudonymize", "reidentify"), environment: Mapping[str, str] | None = None
) -> Iterator[ApiServer]:
    """The API as the Python suites use it: built once if dist/ is missing, with the test policies (and
    `environment` on top)."""
    if not (ROOT / "dist" / "server.mjs").exists():
        subprocess.run(
            [str(ROOT / "node_modules" / ".bin" / "tsx"), "scripts/build.ts"], cwd=ROOT, check=True, capture_output=True
        )
    policies = {"PSEUDO_POLICY_FILE": str(ROOT / "test" / "fixtures" / "policies.json")}
    with api_server(roles, {**policies, **(environment or {})}) as server:
        yield server


@contextmanager
def moto_server(environment: Mapping[str, str] | None = None) -> Iterator[str]:
    """Starts moto's server and yields its endpoint URL; always stops it. `{"INITIAL_NO_AUTH_ACTION_COUNT": "0"}`
    makes it check credentials like AWS does (unknown access keys are refused)."""
    port = free_port()
    server = subprocess.Popen(
        # moto's server as the tests use it (see test_support.local_moto).
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "test_support.local_moto", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, **(environment or {}), "PYTHONPATH": support_python_path()},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(endpoint + "/moto-api/", "moto_server")
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


class FaultProxy:
    """Forwards to the API; answers a share of POSTs with 503, 429 (Retry-After: 0), a dropped connection or a
    truncated answer (the API's status and length, half its body, then the connection closed).
    With `arrow=False` it stands in for a server that predates Arrow bodies: 415 to each, as such a server answers."""

    def __init__(
        self,
        upstream: str,
        *,
        errors: float = 0.0,
        throttles: float = 0.0,
        drops: float = 0.0,
        truncations: float = 0.0,
        fail_all_posts: bool = False,
        seed: int = 7,
        arrow: bool = True,
    ) -> None:
        self.upstream = upstream
        self.arrow = arrow
        self.rates = (drops, errors, throttles)
        self.truncations = truncations
        self.fail_all_posts = fail_all_posts
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.counts = {"forwarded": 0, "503": 0, "429": 0, "dropped": 0, "415": 0, "truncated": 0}
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
                if not proxy.arrow and self.headers.get("content-type", "").startswith("application/vnd.apache.arrow"):
                    proxy._count("415")
                    self._relay(
                        415,
                        "application/problem+json",
                        b'{"type":"urn:pseudonymization:problem:unsupported-media-type","title":"old","status":415}',
                    )
                elif proxy.fail_all_posts or drops <= roll < drops + errors:
                    proxy._count("503")
                    self._relay(
                        503,
                        "application/problem+json",
                        b'{"type":"urn:test:unavailable","title":"injected","status":503}',
                    )
                elif roll < drops:
                    proxy._count("dropped")
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                elif roll < drops + errors + throttles:
                    proxy._count("429")
                    self._relay(
                        429,
                        "application/problem+json",
                        b'{"type":"urn:test:throttled","title":"injected","status":429}',
                        {"retry-after": "0"},
                    )
                else:
                    proxy._count("forwarded")
                    headers = {
                        k: v for k, v in self.headers.items() if k.lower() in ("content-type", "x-api-key", "accept")
                    }
                    answer = requests.post(proxy.upstream + self.path, data=body, headers=headers, timeout=30)
                    with proxy.lock:
                        truncate = proxy.random.random() < proxy.truncations
                    if truncate:
                        proxy._count("truncated")
                        self.send_response(answer.status_code)
                        self.send_header("content-type", answer.headers.get("content-type", "application/json"))
                        self.send_header("content-length", str(len(answer.content)))
                        self.end_headers()
                        self.wfile.write(answer.content[: len(answer.content) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    self._relay(
                        answer.status_code, answer.headers.get("content-type", "application/json"), answer.content
                    )

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
