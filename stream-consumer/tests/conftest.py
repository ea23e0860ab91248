"""Real components for the streaming tests, started once per session and always stopped: moto's Kinesis,
the API server (`node dist/server.mjs`) with a pseudonymize key and a reidentify key, and one local Spark
session. The support code lives in test/python/test_support (not shipped)."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "test" / "python"))

import boto3
import pytest
from pyspark.sql import SparkSession

from spark_udfs.jobs.session import CatalogConfig, build_session
from stream_consumer.kinesis import KinesisDataSource
from test_support.servers import ApiServer, moto_server, started_api
from test_support.spark import prepare_environment

prepare_environment()
# Spark's Python workers inherit the JVM's environment: credentials must be set before Spark starts.
for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "eu-west-1",
}.items():
    os.environ.setdefault(_name, _value)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def kinesis(moto_endpoint: str) -> object:
    return boto3.client("kinesis", region_name="eu-west-1", endpoint_url=moto_endpoint)


@pytest.fixture(scope="session")
def api() -> Iterator[ApiServer]:
    with started_api() as server:
        yield server


@pytest.fixture()
def catalog(tmp_path: Path) -> CatalogConfig:
    """A catalog and warehouse of the test's own."""
    return CatalogConfig(uri=str(tmp_path / "catalog.db"), warehouse=str(tmp_path / "warehouse"))


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    folder = tempfile.mkdtemp(prefix="stream-consumer-")
    session = build_session(
        CatalogConfig(uri=f"{folder}/catalog.db", warehouse=f"{folder}/warehouse"),
        app_name="stream-consumer-tests",
        master="local[2]",
    )
    session.sparkContext.setLogLevel("ERROR")
    session.dataSource.register(KinesisDataSource)
    try:
        yield session
    finally:
        session.stop()
