"""Proof of physical removal: look for pseudonyms in every file under a table's location.

A raw byte search is not enough on its own: Parquet pages and Avro manifests are usually compressed
(Iceberg writes zstd Parquet and deflate Avro by default), so a value can sit in a file without its bytes
appearing. Each file is therefore searched twice: its raw bytes, and its decoded content (every value of
every column of a Parquet file, every field of every Avro record, JSON metadata as text). Manifests keep
column bounds truncated to 16 characters by default, so Avro files are also searched for that prefix.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..iceberg import is_s3_uri, local_path, split_s3_uri

#: Iceberg's default metrics mode for strings, truncate(16): bounds in manifests are 16-character prefixes.
BOUND_PREFIX_CHARS = 16


@dataclass
class ScanResult:
    files: int = 0
    bytes: int = 0
    #: file path relative to the table location -> how it matched ("raw", "parquet", "avro", "bound prefix")
    matches: dict[str, list[str]] = field(default_factory=dict)

    def add(self, path: str, how: str) -> None:
        self.matches.setdefault(path, []).append(how)


def table_files(location: str) -> Iterator[tuple[str, bytes]]:
    """(path relative to the location, content) of every file under a local folder or an s3:// prefix."""
    if is_s3_uri(location):
        import boto3

        bucket, prefix = split_s3_uri(location)
        prefix = prefix.rstrip("/") + "/"
        s3 = boto3.client("s3")
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                body: bytes = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                yield item["Key"][len(prefix) :], body
        return
    root = local_path(location)
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                yield os.path.relpath(path, root), handle.read()


def scan_table_files(location: str, needles: Iterable[str]) -> ScanResult:
    """Searches every file under a table location (a local folder, file://, or s3://)."""
    values = sorted(set(needles))
    encoded = [v.encode("utf-8") for v in values]
    prefixes = sorted({v[:BOUND_PREFIX_CHARS].encode("utf-8") for v in values if len(v) > BOUND_PREFIX_CHARS})
    result = ScanResult()
    value_set = pa.array(values, pa.string())
    for relative, content in table_files(location):
        result.files += 1
        result.bytes += len(content)
        if any(needle in content for needle in encoded):
            result.add(relative, "raw")
        if relative.endswith(".parquet"):
            if _parquet_holds(content, value_set):
                result.add(relative, "parquet")
        elif relative.endswith(".avro"):
            found = _avro_holds(content, set(encoded), prefixes)
            if found:
                result.add(relative, found)
    return result


def _parquet_holds(content: bytes, value_set: pa.Array) -> bool:
    table = pq.read_table(pa.BufferReader(content))
    return any(_column_holds(column, value_set) for column in table.columns)


def _column_holds(column: Any, value_set: pa.Array) -> bool:
    kind = column.type
    if pa.types.is_struct(kind):
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        return any(_column_holds(chunk.field(i), value_set) for chunk in chunks for i in range(kind.num_fields))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_map(kind):
        return _column_holds(pc.list_flatten(column), value_set)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return bool(pc.any(pc.is_in(column, value_set=value_set)).as_py())
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return bool(pc.any(pc.is_in(pc.cast(column, pa.binary()), value_set=pc.cast(value_set, pa.binary()))).as_py())
    return False


def _avro_holds(content: bytes, needles: set[bytes], prefixes: list[bytes]) -> str | None:
    import io

    import fastavro

    with io.BytesIO(content) as handle:
        for record in fastavro.reader(handle):
            for value in _leaves(record):
                if value in needles or any(needle in value for needle in needles):
                    return "avro"
                if any(value.startswith(prefix) for prefix in prefixes):
                    return "bound prefix"
    return None


def _leaves(value: Any) -> Iterator[bytes]:
    """Every string and bytes value inside a decoded Avro record, as bytes."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, str):
        yield value.encode("utf-8")
    elif isinstance(value, (bytes, bytearray)):
        yield bytes(value)
