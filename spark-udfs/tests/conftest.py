"""Real components for the spark-udfs tests, started once per session and always stopped: the API server
(`node dist/server.mjs`) on a free 127.0.0.1 port with its own data folder and API keys, moto's server, and
one local Spark session with the Iceberg runtime and a JDBC catalog on SQLite, shared by every test (each
test writes tables of its own names). The support code lives in test/python/test_support (not shipped)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "test" / "python"))

import pytest
import requests
from pyspark.sql import SparkSession

from spark_udfs import ApiKeySource, ClientConfig
from spark_udfs.jobs.session import CatalogConfig, build_session
from test_support.servers import moto_server, started_api
from test_support.spark import prepare_environment

prepare_environment()


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
    with started_api() as server:
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


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint
