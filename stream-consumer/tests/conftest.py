"""moto's Kinesis and a local Spark session for the source tests, started here and always stopped."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests
from pyspark.sql import SparkSession

from spark_udfs.jobs.session import PROJECT_ROOT, CatalogConfig, build_session
from stream_consumer.kinesis import KinesisDataSource

# Spark's Python workers inherit the JVM's environment: credentials must be set before Spark starts.
for _name, _value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1"}.items():
    os.environ.setdefault(_name, _value)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(Path(PROJECT_ROOT) / ".venv" / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                requests.get(endpoint + "/moto-api/", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="session")
def kinesis(moto_endpoint: str) -> object:
    return boto3.client("kinesis", region_name="eu-west-1", endpoint_url=moto_endpoint)


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    folder = tempfile.mkdtemp(prefix="stream-consumer-")
    session = build_session(CatalogConfig(uri=f"{folder}/catalog.db", warehouse=f"{folder}/warehouse"), app_name="stream-consumer-tests", master="local[2]")
    session.sparkContext.setLogLevel("ERROR")
    session.dataSource.register(KinesisDataSource)
    try:
        yield session
    finally:
        session.stop()
