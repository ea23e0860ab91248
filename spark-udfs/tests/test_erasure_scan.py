"""The verification's file search, on a local folder and on moto's S3: raw bytes are not enough on compressed
files, so Parquet values and Avro records are decoded, and manifest bounds are searched by prefix."""

from __future__ import annotations

import io
import json
import os
import random
from pathlib import Path
from typing import Any

import boto3
import fastavro
import pyarrow as pa
import pyarrow.parquet as pq

from spark_udfs.erasure.scan import scan_table_files

RANDOM = random.Random(5)
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
PSEUDONYMS = ["s1." + "".join(RANDOM.choice(ALPHABET) for _ in range(44)) for _ in range(2000)]
SUBJECT, OTHER = PSEUDONYMS[1234], PSEUDONYMS[0]


def files() -> dict[str, bytes]:
    zstd, plain = io.BytesIO(), io.BytesIO()
    # Like Iceberg's own files: zstd pages, no statistics for the identifier column.
    pq.write_table(
        pa.table({"id": list(range(2000)), "email": PSEUDONYMS}),
        zstd,
        compression="zstd",
        write_statistics=False,
        use_dictionary=False,
    )
    pq.write_table(pa.table({"id": [3], "email": [OTHER]}), plain, compression="none")
    manifest = io.BytesIO()
    schema = {
        "type": "record",
        "name": "entry",
        "fields": [{"name": "path", "type": "string"}, {"name": "upper", "type": "bytes"}],
    }
    fastavro.writer(manifest, schema, [{"path": "data/a.parquet", "upper": SUBJECT[:16].encode()}], codec="deflate")
    return {
        "data/compressed.parquet": zstd.getvalue(),
        "data/clean.parquet": plain.getvalue(),
        "metadata/manifest.avro": manifest.getvalue(),
        "metadata/v1.metadata.json": json.dumps({"format-version": 2}).encode(),
    }


def check(result: Any) -> None:
    assert result.files == 4
    # zstd hides the value from a raw search; decoding finds it. The manifest holds a 16-character bound prefix.
    assert result.matches == {"data/compressed.parquet": ["parquet"], "metadata/manifest.avro": ["bound prefix"]}


def test_finds_values_in_compressed_files_of_a_local_table(tmp_path: Path) -> None:
    for name, content in files().items():
        os.makedirs(tmp_path / os.path.dirname(name), exist_ok=True)
        (tmp_path / name).write_bytes(content)
    assert SUBJECT.encode() not in (tmp_path / "data/compressed.parquet").read_bytes()
    check(scan_table_files(f"file:{tmp_path}", [SUBJECT]))
    assert scan_table_files(str(tmp_path), ["s1.NOBODYzzzzzzzzzzzzzzzzzzzzzzzzzzzz"]).matches == {}


def test_searches_every_object_under_an_s3_location(moto_endpoint: str, monkeypatch: Any) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="lake", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    for name, content in files().items():
        s3.put_object(Bucket="lake", Key=f"warehouse/crm/customers/{name}", Body=content)
    s3.put_object(
        Bucket="lake", Key="warehouse/crm/customers_other/data/x.parquet", Body=files()["data/compressed.parquet"]
    )
    check(scan_table_files("s3://lake/warehouse/crm/customers", [SUBJECT]))
