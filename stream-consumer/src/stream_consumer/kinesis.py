"""A Kinesis Data Streams source for Spark Structured Streaming, as a Python Data Source (boto3).

    spark.dataSource.register(KinesisDataSource)
    events = (spark.readStream.format("kinesis")
              .option("streamName", "vehicles").option("region", "eu-west-1")
              .option("startingPosition", "TRIM_HORIZON")        # or LATEST, or AT_TIMESTAMP + startingTimestamp
              .option("endpointUrl", "http://127.0.0.1:5000")   # local endpoints only
              .load())

Rows: data (binary), streamName, partitionKey, sequenceNumber (strings), approximateArrivalTimestamp
(timestamp): the schema of the aws-kinesis connector, which can replace this source on EMR.

It is a SimpleDataSourceStreamReader: Spark hands `read` the start offset (from the checkpoint after a
restart) and calls `readBetweenOffsets` to replay a batch during recovery, so a batch always holds the
same records, which exactly-once sinks need. Offsets are, per shard, the last sequence number included
(compared as integers) and whether the shard is closed and fully read; at most `maxRecordsPerShard` per
shard and trigger. Resharding: a child shard is read only after its parents are closed and fully read.
LATEST and AT_TIMESTAMP become a fixed timestamp in the first offset, logged by Spark with the first batch
(empty if need be), so a restart does not move the start. Reading happens in the driver's Python process:
fine locally and at moderate rates; on EMR the aws-kinesis connector can take over with the same schema.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pyspark.sql.datasource import DataSource, SimpleDataSourceStreamReader
from pyspark.sql.types import BinaryType, StringType, StructField, StructType, TimestampType

from spark_udfs.errors import ValueFreeError

SCHEMA = StructType(
    [
        StructField("data", BinaryType(), False),
        StructField("streamName", StringType(), False),
        StructField("partitionKey", StringType(), False),
        StructField("sequenceNumber", StringType(), False),
        StructField("approximateArrivalTimestamp", TimestampType(), True),
    ]
)

#: Per shard: {"seq": last included sequence number or None, "closed": bool}; "startAtMs" for LATEST/AT_TIMESTAMP.
Offset = dict[str, Any]


class KinesisSourceError(ValueFreeError):
    """The stream cannot be read (missing stream, credentials, endpoint): the query fails with this message."""


def _client(options: dict[str, str]) -> Any:
    import boto3

    kwargs: dict[str, Any] = {"region_name": options.get("region")}
    if options.get("endpointurl"):
        kwargs["endpoint_url"] = options["endpointurl"]
    return boto3.client("kinesis", **kwargs)


def _iterator(
    client: Any, stream: str, shard_id: str, after_seq: str | None, start_at_ms: int | None, trim_horizon: bool
) -> str | None:
    if after_seq is not None:
        args: dict[str, Any] = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after_seq}
    elif start_at_ms is not None and not trim_horizon:
        args = {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": datetime.fromtimestamp(start_at_ms / 1000, tz=UTC)}
    else:
        args = {"ShardIteratorType": "TRIM_HORIZON"}
    iterator: str | None = client.get_shard_iterator(StreamName=stream, ShardId=shard_id, **args)["ShardIterator"]
    return iterator


class KinesisStreamReader(SimpleDataSourceStreamReader):
    def __init__(self, options: dict[str, str]) -> None:
        # Spark's options are case-insensitive and arrive lower-cased: look them up that way.
        self.options = {key.lower(): value for key, value in options.items()}
        self.stream = self.options.get("streamname") or ""
        if not self.stream:
            raise KinesisSourceError("option streamName is required")
        position = self.options.get("startingposition", "TRIM_HORIZON").upper()
        if position not in ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"):
            raise KinesisSourceError("option startingPosition must be TRIM_HORIZON, LATEST or AT_TIMESTAMP")
        self.position = position
        self.max_per_shard = int(self.options.get("maxrecordspershard", "10000"))
        self._client_cache: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_client_cache"] = None  # boto3 clients do not pickle; each process makes its own
        return state

    @property
    def client(self) -> Any:
        if self._client_cache is None:
            self._client_cache = _client(self.options)
        return self._client_cache

    def _shards(self) -> list[dict[str, Any]]:
        try:
            shards: list[dict[str, Any]] = []
            response = self.client.list_shards(StreamName=self.stream)
            shards.extend(response["Shards"])
            while response.get("NextToken"):
                response = self.client.list_shards(NextToken=response["NextToken"])
                shards.extend(response["Shards"])
            return shards
        except Exception as error:  # botocore raises many types; name the stream and the AWS error code only
            code = getattr(error, "response", {}).get("Error", {}).get("Code", type(error).__name__)
            raise KinesisSourceError(f"cannot list the shards of stream {self.stream}: {code}") from None

    def initialOffset(self) -> Offset:
        start_at: int | None = None
        if self.position == "LATEST":
            start_at = int(time.time() * 1000)
        elif self.position == "AT_TIMESTAMP":
            if "startingtimestamp" not in self.options:
                raise KinesisSourceError("startingPosition AT_TIMESTAMP needs option startingTimestamp (ISO 8601)")
            start_at = int(datetime.fromisoformat(self.options["startingtimestamp"]).timestamp() * 1000)
        # "started": False until the first read. The first read always returns an offset that differs, so Spark
        # plans and logs a (possibly empty) batch and the pinned start survives a restart even if nothing came yet.
        return {
            "startAtMs": start_at,
            "started": False,
            "shards": {s["ShardId"]: {"seq": None, "closed": False} for s in self._shards()},
        }

    def read(self, start: Offset) -> tuple[Iterator[tuple[Any, ...]], Offset]:
        """Records after `start` (at most max_per_shard per shard) and the offset they end at."""
        shards = self._shards()
        known: dict[str, dict[str, Any]] = {k: dict(v) for k, v in start["shards"].items()}
        for shard in shards:
            known.setdefault(shard["ShardId"], {"seq": None, "closed": False})
        rows: list[tuple[Any, ...]] = []
        for shard in shards:
            state = known[shard["ShardId"]]
            if state["closed"] or not _parents_done(shard, known):
                continue
            records, state["seq"], state["closed"] = self._read_shard(
                shard["ShardId"], state["seq"], start.get("startAtMs"), None
            )
            rows.extend(records)
        return iter(rows), {"startAtMs": start.get("startAtMs"), "started": True, "shards": known}

    def readBetweenOffsets(self, start: Offset, end: Offset) -> Iterator[tuple[Any, ...]]:
        """The same records `read` returned for this range, read again (recovery)."""
        for shard_id, state in end["shards"].items():
            before = start["shards"].get(shard_id, {"seq": None})["seq"]
            if state["seq"] is not None and (before is None or int(state["seq"]) > int(before)):
                records, _, _ = self._read_shard(shard_id, before, end.get("startAtMs"), state["seq"])
                yield from records

    def _read_shard(
        self, shard_id: str, after_seq: str | None, start_at_ms: int | None, end_seq: str | None
    ) -> tuple[list[tuple[Any, ...]], str | None, bool]:
        """Records after `after_seq` up to `end_seq` (or max_per_shard), the last sequence number, and whether the
        shard is closed and fully read."""
        iterator = _iterator(
            self.client, self.stream, shard_id, after_seq, start_at_ms, self.position == "TRIM_HORIZON"
        )
        end = int(end_seq) if end_seq is not None else None
        rows: list[tuple[Any, ...]] = []
        last = after_seq
        while iterator:
            limit = 10_000 if end is not None else min(10_000, self.max_per_shard - len(rows))
            if limit <= 0:
                break
            page = self.client.get_records(ShardIterator=iterator, Limit=limit)
            records = page.get("Records", [])
            for record in records:
                if end is not None and int(record["SequenceNumber"]) > end:
                    return rows, last, False
                rows.append(
                    (
                        bytes(record["Data"]),
                        self.stream,
                        record["PartitionKey"],
                        record["SequenceNumber"],
                        record.get("ApproximateArrivalTimestamp"),
                    )
                )
                last = record["SequenceNumber"]
                if end is not None and int(last) == end:
                    return rows, last, False
            iterator = page.get("NextShardIterator")
            if not records and (iterator is None or page.get("MillisBehindLatest", 0) == 0):
                break
        return rows, last, iterator is None

    def commit(self, end: Offset) -> None:
        """Nothing to acknowledge: Kinesis keeps records for its retention period; the checkpoint holds the position."""


def _parents_done(shard: dict[str, Any], known: dict[str, dict[str, Any]]) -> bool:
    """A child waits for its parents; a parent no longer listed (past retention) does not hold it back."""
    for parent in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")):
        if parent and parent in known and not known[parent]["closed"]:
            return False
    return True


class KinesisDataSource(DataSource):
    @classmethod
    def name(cls) -> str:
        return "kinesis"

    def schema(self) -> StructType:
        return SCHEMA

    def simpleStreamReader(self, schema: StructType) -> SimpleDataSourceStreamReader:
        return KinesisStreamReader(dict(self.options))
