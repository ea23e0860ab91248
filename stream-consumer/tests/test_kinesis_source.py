"""The Kinesis source on local Spark against moto's Kinesis over HTTP."""

from __future__ import annotations

import json
import tempfile
import time
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession


def create_stream(kinesis: Any, name: str, shards: int) -> None:
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=name)


def put(kinesis: Any, name: str, start: int, count: int) -> None:
    for offset in range(start, start + count, 500):
        records = [
            {"Data": json.dumps({"n": n}).encode(), "PartitionKey": f"key-{n % 17}"}
            for n in range(offset, min(start + count, offset + 500))
        ]
        assert kinesis.put_records(StreamName=name, Records=records)["FailedRecordCount"] == 0


def drain(
    spark: SparkSession, endpoint: str, stream: str, checkpoint: str, expected: int, **options: str
) -> list[dict[str, Any]]:
    """Runs the query until `expected` rows arrived and nothing new came for a second (so duplicates would
    show), then stops it."""
    seen: list[dict[str, Any]] = []

    def collect(batch: DataFrame, batch_id: int) -> None:
        for row in batch.collect():
            seen.append(
                {
                    "n": json.loads(bytes(row.data))["n"],
                    "batch": batch_id,
                    "seq": int(row.sequenceNumber),
                    "key": row.partitionKey,
                    "stream": row.streamName,
                }
            )

    reader = (
        spark.readStream.format("kinesis")
        .option("streamName", stream)
        .option("region", "eu-west-1")
        .option("endpointUrl", endpoint)
        .option("maxRecordsPerShard", "150")
    )
    for key, value in options.items():
        reader = reader.option(key, value)
    query = (
        reader.load()
        .writeStream.foreachBatch(collect)
        .option("checkpointLocation", checkpoint)
        .trigger(processingTime="200 milliseconds")
        .start()
    )
    try:
        deadline = time.time() + 90
        settled_since: float | None = None
        count = -1
        while time.time() < deadline and query.exception() is None:
            if len(seen) != count:
                count, settled_since = len(seen), time.time()
            elif (
                count >= expected
                and settled_since is not None
                and time.time() - settled_since > 1.0
                and query.lastProgress is not None
            ):
                # At least one batch completed, so its offsets are in the checkpoint.
                break
            time.sleep(0.1)
        if query.exception():
            raise RuntimeError(str(query.exception()))
    finally:
        query.stop()
    return seen


def test_reads_every_record_of_every_shard_once_in_bounded_batches(
    spark: SparkSession, kinesis: Any, moto_endpoint: str
) -> None:
    create_stream(kinesis, "all", 3)
    put(kinesis, "all", 0, 1000)
    seen = drain(spark, moto_endpoint, "all", tempfile.mkdtemp(), 1000)
    assert sorted(r["n"] for r in seen) == list(range(1000))
    assert len({r["batch"] for r in seen}) > 1
    assert {r["stream"] for r in seen} == {"all"}


def test_resumes_from_the_checkpoint_with_exactly_the_new_records(
    spark: SparkSession, kinesis: Any, moto_endpoint: str
) -> None:
    create_stream(kinesis, "resume", 2)
    checkpoint = tempfile.mkdtemp()
    put(kinesis, "resume", 0, 300)
    first = drain(spark, moto_endpoint, "resume", checkpoint, 300)
    put(kinesis, "resume", 300, 200)
    second = drain(spark, moto_endpoint, "resume", checkpoint, 200)
    assert sorted(r["n"] for r in first) == list(range(300))
    assert sorted(r["n"] for r in second) == list(range(300, 500))


def test_a_shard_split_loses_and_repeats_nothing_and_reads_parents_first(
    spark: SparkSession, kinesis: Any, moto_endpoint: str
) -> None:
    create_stream(kinesis, "split", 1)
    put(kinesis, "split", 0, 400)
    shard = kinesis.list_shards(StreamName="split")["Shards"][0]
    low, high = int(shard["HashKeyRange"]["StartingHashKey"]), int(shard["HashKeyRange"]["EndingHashKey"])
    kinesis.split_shard(StreamName="split", ShardToSplit=shard["ShardId"], NewStartingHashKey=str((low + high) // 2))
    time.sleep(0.5)
    put(kinesis, "split", 400, 400)
    seen = drain(spark, moto_endpoint, "split", tempfile.mkdtemp(), 800)
    assert sorted(r["n"] for r in seen) == list(range(800))
    # Per partition key, order is kept across the split: the parent's records come first.
    by_key: dict[str, list[int]] = {}
    for row in sorted(seen, key=lambda r: (r["batch"], r["seq"])):
        by_key.setdefault(row["key"], []).append(row["n"])
    assert all(ns == sorted(ns) for ns in by_key.values())


def test_latest_starts_after_what_was_already_in_the_stream(
    spark: SparkSession, kinesis: Any, moto_endpoint: str
) -> None:
    create_stream(kinesis, "latest", 1)
    put(kinesis, "latest", 0, 50)
    checkpoint = tempfile.mkdtemp()
    time.sleep(1.1)
    assert drain(spark, moto_endpoint, "latest", checkpoint, 0, startingPosition="LATEST") == []
    time.sleep(1.1)
    put(kinesis, "latest", 50, 20)
    assert sorted(
        r["n"] for r in drain(spark, moto_endpoint, "latest", checkpoint, 20, startingPosition="LATEST")
    ) == list(range(50, 70))


def test_a_missing_stream_fails_the_query_with_a_clear_message(spark: SparkSession, moto_endpoint: str) -> None:
    with pytest.raises(Exception, match="cannot list the shards of stream no-such-stream: ResourceNotFoundException"):
        drain(spark, moto_endpoint, "no-such-stream", tempfile.mkdtemp(), 1)
