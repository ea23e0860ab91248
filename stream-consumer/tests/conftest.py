"""moto's Kinesis and a local Spark session for the source tests, started here and always stopped."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import boto3
import pytest
from pyspark.sql import SparkSession

from spark_udfs.jobs.session import CatalogConfig, build_session
from spark_udfs.testing import moto_server
from stream_consumer.kinesis import KinesisDataSource

# Spark's Python workers inherit the JVM's environment: credentials must be set before Spark starts.
for _name, _value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1"}.items():
    os.environ.setdefault(_name, _value)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


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
