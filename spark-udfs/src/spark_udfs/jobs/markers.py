"""Exactly-once appends of micro-batches to Iceberg tables, and keeping their markers through snapshot expiry.

Shared by the streaming job (stream-consumer), which appends, and the erasure job, which expires snapshots.

Spark replays a micro-batch after a crash when the batch's Iceberg commit happened but the checkpoint did
not record it yet. Each append therefore carries its query id and batch id in the snapshot summary
(`snapshot-property.*` write options, committed atomically with the data), and an append whose marker is
already in the table is skipped. The query id comes from the checkpoint, so a new checkpoint starts a new
sequence of batch ids instead of being mistaken for a replay.

Markers live in snapshots, and expiring snapshots removes them. Whatever expires snapshots of a streamed
table (the erasure job does) first folds the markers into the table property
`stream-consumer.committed.<query id>` = highest batch id; `already_committed` reads both.
"""

from __future__ import annotations

import re

from pyspark.sql import DataFrame, SparkSession

from .. import contracts
from ..iceberg import set_table_properties, table_properties

QUERY_ID_PROPERTY = "stream-consumer.query-id"
BATCH_ID_PROPERTY = "stream-consumer.batch-id"
COMMITTED_PROPERTY_PREFIX = "stream-consumer.committed."
_UUID = re.compile(contracts.common_pattern("uuid"))


def _check_query_id(query_id: str) -> str:
    if not _UUID.match(query_id):  # it goes into SQL text below
        raise ValueError("the streaming query id must be a UUID")
    return query_id


def already_committed(spark: SparkSession, table: str, query_id: str, batch_id: int) -> bool:
    """Whether `table` has the append of this query's batch (from its snapshots or a folded watermark)."""
    query_id = _check_query_id(query_id)
    folded = table_properties(spark, table).get(COMMITTED_PROPERTY_PREFIX + query_id)
    if folded is not None and int(folded) >= batch_id:
        return True
    found = spark.sql(
        f"SELECT 1 FROM {table}.snapshots WHERE summary['{QUERY_ID_PROPERTY}'] = '{query_id}' "
        f"AND summary['{BATCH_ID_PROPERTY}'] = '{int(batch_id)}' LIMIT 1"
    ).collect()
    return bool(found)


def append_once(rows: DataFrame, table: str, query_id: str, batch_id: int) -> bool:
    """Appends `rows` with this batch's marker unless the table already has it; True when it appended."""
    if already_committed(rows.sparkSession, table, query_id, batch_id):
        return False
    # The marker's shape is a contract (contracts/stream-marker.schema.json): the erasure job folds it and reports it.
    marker = {QUERY_ID_PROPERTY: query_id, BATCH_ID_PROPERTY: str(batch_id)}
    contracts.validate("stream-marker", marker)
    writer = rows.writeTo(table)
    for key, value in marker.items():
        writer = writer.option(f"snapshot-property.{key}", value)
    writer.append()
    return True


def fold_markers(spark: SparkSession, table: str) -> dict[str, int]:
    """Copies the highest batch id of every query found in the snapshots into table properties, so the markers
    survive snapshot expiry. Returns {query id: batch id}. Call it before expiring snapshots."""
    rows = spark.sql(
        f"SELECT summary['{QUERY_ID_PROPERTY}'] AS query_id, "
        f"max(CAST(summary['{BATCH_ID_PROPERTY}'] AS BIGINT)) AS batch_id "
        f"FROM {table}.snapshots WHERE summary['{QUERY_ID_PROPERTY}'] IS NOT NULL GROUP BY 1"
    ).collect()
    properties = table_properties(spark, table)
    folded: dict[str, int] = {}
    for row in rows:
        query = _check_query_id(str(row["query_id"]))
        # Never lower a watermark folded earlier (its snapshots may be gone already).
        folded[query] = max(int(row["batch_id"]), int(properties.get(COMMITTED_PROPERTY_PREFIX + query, -1)))
    set_table_properties(
        spark, table, {COMMITTED_PROPERTY_PREFIX + query: str(batch) for query, batch in folded.items()}
    )
    return folded
