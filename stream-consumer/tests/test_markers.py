"""Exactly-once appends on local Spark and Iceberg: one append per query and batch, markers that survive expiry."""

from __future__ import annotations

import uuid

from pyspark.sql import SparkSession

from spark_udfs.jobs.markers import already_committed, append_once, fold_markers


def test_appends_a_batch_once_per_query(spark: SparkSession) -> None:
    spark.sql("CREATE TABLE local.sink.once (n bigint) USING iceberg")
    rows = spark.range(5).withColumnRenamed("id", "n")
    query, other = str(uuid.uuid4()), str(uuid.uuid4())
    assert append_once(rows, "local.sink.once", query, 0)
    assert not append_once(rows, "local.sink.once", query, 0), "a replayed batch is skipped"
    assert append_once(rows, "local.sink.once", query, 1)
    assert append_once(rows, "local.sink.once", other, 0), "a new checkpoint's batch 0 is not a replay"
    assert spark.table("local.sink.once").count() == 15
    summary = spark.sql("SELECT summary FROM local.sink.once.snapshots ORDER BY committed_at LIMIT 1").collect()[0][0]
    assert (summary["stream-consumer.query-id"], summary["stream-consumer.batch-id"]) == (query, "0")


def test_folded_markers_survive_the_expiry_of_their_snapshots(spark: SparkSession) -> None:
    spark.sql("CREATE TABLE local.sink.expired (n bigint) USING iceberg")
    query = str(uuid.uuid4())
    for batch in range(3):
        append_once(
            spark.range(batch * 10, batch * 10 + 10).withColumnRenamed("id", "n"), "local.sink.expired", query, batch
        )
    assert fold_markers(spark, "local.sink.expired") == {query: 2}
    spark.sql("DELETE FROM local.sink.expired WHERE n = 0")  # another writer's snapshot becomes the current one
    spark.sql(
        "CALL local.system.expire_snapshots(table => 'sink.expired', "
        "older_than => TIMESTAMP '2999-01-01 00:00:00', retain_last => 1)"
    )
    assert (
        spark.sql(
            "SELECT count(*) FROM local.sink.expired.snapshots WHERE summary['stream-consumer.query-id'] IS NOT NULL"
        ).collect()[0][0]
        == 0
    )
    assert already_committed(spark, "local.sink.expired", query, 2)
    assert not already_committed(spark, "local.sink.expired", query, 3)
    # Folding again after the expiry keeps the watermark instead of dropping it.
    assert fold_markers(spark, "local.sink.expired") == {}
    assert already_committed(spark, "local.sink.expired", query, 2)
