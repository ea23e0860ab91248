"""`python -m spark_udfs.moto_kinesis [moto_server options]`: moto's server, with its Kinesis shard made linear.

moto 5 keeps a shard's records in an ordered dict and finds the last sequence number by listing every key,
and GetRecords scans the shard from its first record: each PutRecords and GetRecords costs O(records in the
shard), so a stream of a million records takes hours to fill and drain. The two replacements below give the
same answers (sequence numbers in a shard are consecutive integers from 1, as moto assigns them) in O(1) per
record. Only local tests and benchmarks start moto; AWS itself is not affected by any of this.
"""

from __future__ import annotations

import sys
from typing import Any

from moto.kinesis.models import Shard


def _max_sequence_number(self: Any) -> int:
    return next(reversed(self.records)) if self.records else 0


def _min_sequence_number(self: Any) -> int:
    return next(iter(self.records)) if self.records else 0


def _get_records(self: Any, last_sequence_id: str, limit: int | None) -> tuple[list[Any], int, int]:
    last = int(last_sequence_id)
    results: list[Any] = []
    newest = _max_sequence_number(self)
    key = max(last + 1, _min_sequence_number(self))
    while key <= newest and (limit is None or len(results) < limit):
        record = self.records.get(key)
        if record is not None:
            results.append(record)
            last = key
        key += 1
    behind = self.records[newest].created_at - results[-1].created_at if results else 0.0
    return results, last, int(behind * 1000)


def patch() -> None:
    setattr(Shard, "get_max_sequence_number", _max_sequence_number)
    setattr(Shard, "get_min_sequence_number", _min_sequence_number)
    setattr(Shard, "get_records", _get_records)


if __name__ == "__main__":
    patch()
    from moto.server import main

    main(sys.argv[1:])
