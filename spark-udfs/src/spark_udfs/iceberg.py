"""Iceberg chores every job shares, in one place: a table's properties (read as a dict, set only where they
differ), and locations that are local paths or s3:// URIs (table locations, job configurations, orders and
certificates on EMR).

Property keys and values are ours (names and numbers, never data), so they can go into SQL text.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pyspark.sql import SparkSession

S3_SCHEMES = ("s3://", "s3a://")


def table_properties(spark: SparkSession, table: str) -> dict[str, str]:
    """The table's properties (SHOW TBLPROPERTIES) as {key: value}."""
    return {str(row["key"]): str(row["value"]) for row in spark.sql(f"SHOW TBLPROPERTIES {table}").collect()}


def sql_properties(properties: Mapping[str, str]) -> str:
    """TBLPROPERTIES text: `'key'='value', ...`."""
    return ", ".join(f"'{key}'='{value}'" for key, value in properties.items())


def set_table_properties(spark: SparkSession, table: str, properties: Mapping[str, str]) -> None:
    if properties:
        spark.sql(f"ALTER TABLE {table} SET TBLPROPERTIES ({sql_properties(properties)})")


def ensure_table_properties(spark: SparkSession, table: str, wanted: Mapping[str, str]) -> dict[str, str]:
    """Sets those of `wanted` the table does not have with that value; returns what it set."""
    current = table_properties(spark, table)
    missing = {key: value for key, value in wanted.items() if current.get(key) != value}
    set_table_properties(spark, table, missing)
    return missing


def is_s3_uri(location: str) -> bool:
    return location.startswith(S3_SCHEMES)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key or prefix) of an s3:// or s3a:// URI; the key is "" for a bare bucket."""
    if not is_s3_uri(uri):
        raise ValueError("not an s3:// URI")
    bucket, _, key = uri.split("://", 1)[1].partition("/")
    if not bucket:
        raise ValueError("an s3:// URI needs a bucket")
    return bucket, key


def local_path(location: str) -> str:
    """A local location without its file: or file:// scheme (Iceberg writes local table locations that way)."""
    return location.removeprefix("file://").removeprefix("file:")


def read_text(location: str) -> str:
    """A UTF-8 document from a local file or an s3:// object."""
    if is_s3_uri(location):
        import boto3  # only jobs that read from S3 need boto3

        bucket, key = split_s3_uri(location)
        body: bytes = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        return body.decode("utf-8")
    with open(local_path(location), encoding="utf-8") as handle:
        return handle.read()


def write_text_whole(location: str, text: str) -> None:
    """Writes a document whole or not at all: a reader that finds it can take it as complete (an S3 put is
    atomic; a local file is written aside and renamed)."""
    if is_s3_uri(location):
        import boto3

        bucket, key = split_s3_uri(location)
        boto3.client("s3").put_object(
            Bucket=bucket,
            Key=key,
            Body=text.encode("utf-8"),
            ContentType="application/json",
            ServerSideEncryption="aws:kms",
        )
        return
    path = local_path(location)
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(partial, path)
