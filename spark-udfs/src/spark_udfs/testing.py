"""Helpers shared by the Python tests and benchmarks: the one way to start a local AWS endpoint (moto's server
from the project venv) and the pseudonymization API (`node dist/server.mjs` with API keys made by its CLI),
each on a free 127.0.0.1 port and always stopped."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from .jobs.session import PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_up(url: str, what: str) -> None:
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


@contextmanager
def api_server(roles: tuple[str, ...] = ("pseudonymize",), environment: Mapping[str, str] | None = None) -> Iterator[ApiServer]:
    """Starts the built API (run `npm run build` first) with its own data folder and one API key per role."""
    root = Path(PROJECT_ROOT)
    data_dir = tempfile.mkdtemp(prefix="pseudo-api-")
    env = {**os.environ, "PSEUDO_DATA_DIR": data_dir, "PSEUDO_LOG_LEVEL": "warn", **(environment or {})}
    key_files = {}
    for role in roles:
        out = subprocess.run(["node", "dist/cli.mjs", "apikeys", "create", "--name", f"test-{role}", "--roles", role, "--out", f"{data_dir}/{role}.key"], cwd=root, env=env, check=True, capture_output=True, text=True)
        key_files[role] = json.loads(out.stdout)["secretFile"]
    port = free_port()
    server = subprocess.Popen(["node", "dist/server.mjs"], cwd=root, env={**env, "PSEUDO_PORT": str(port)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url + "/readyz", "the API server")
        yield ApiServer(url, key_files)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def moto_server() -> Iterator[str]:
    """Starts moto's server and yields its endpoint URL; always stops it."""
    port = free_port()
    server = subprocess.Popen([str(Path(PROJECT_ROOT) / ".venv" / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(endpoint + "/moto-api/", "moto_server")
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)
