"""The table maintenance job as its own process (as the service's runner starts it) on local Iceberg tables fed
by micro-batch appends with the streaming job's exactly-once markers: compaction keeps the rows, cuts files and
manifests, expiry keeps the markers, an erased subject stays absent, appends running through it lose nothing and
duplicate nothing; a bad registry exits 2 naming the key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from spark_udfs.jobs.config import JobConfigError
from spark_udfs.jobs.markers import already_committed, append_once
from spark_udfs.jobs.session import CatalogConfig
from spark_udfs.maintenance.job import parse_registry

ROWS_PER_BATCH = 10
SCHEMA = "id bigint, email string, batch int"
ERASED = "pseudonym-of-the-erased-subject"
#: A registered table names its pseudonymized columns (contracts/table-registry.schema.json), maintained or not.
COLUMNS = {"email": "email"}


def registry(warehouse: CatalogConfig, tables: list[dict[str, Any]], maintenance: dict[str, Any]) -> dict[str, Any]:
    return {
        "catalog": {"name": "local", "type": "jdbc", "uri": warehouse.uri, "warehouse": warehouse.warehouse},
        "maintenance": maintenance,
        "tables": tables,
    }


def run_job(config: dict[str, Any], folder: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    registry_file, report_file = folder / "registry.json", folder / "report.json"
    registry_file.write_text(json.dumps(config))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "spark_udfs.maintenance.job",
            "--registry",
            str(registry_file),
            "--report",
            str(report_file),
            "--master",
            "local[2]",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYSPARK_PYTHON": sys.executable},
    )
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    return done.returncode, report, done.stdout + done.stderr


def batch_rows(batch: int) -> list[tuple[int, str, int]]:
    # Every 7th batch holds a row of the subject erased later.
    return [
        (batch * ROWS_PER_BATCH + k, ERASED if k == 0 and batch % 7 == 0 else f"pseudonym-{batch}-{k}", batch)
        for k in range(ROWS_PER_BATCH)
    ]


def stream_batches(spark: SparkSession, name: str, query: str, batches: range) -> None:
    for batch in batches:
        append_once(spark.createDataFrame(batch_rows(batch), SCHEMA), name, query, batch)


def streamed_table(spark: SparkSession, batches: int) -> tuple[str, str]:
    """A table of `batches` micro-batch appends with markers, then the erased subject's rows deleted
    (merge-on-read: delete files compaction has to apply). Returns (table name, query id)."""
    name = f"local.maint.events_{uuid.uuid4().hex[:8]}"
    spark.sql(
        f"CREATE TABLE {name} ({SCHEMA}) USING iceberg TBLPROPERTIES ('format-version'='2', "
        "'write.delete.mode'='merge-on-read')"
    )
    query = str(uuid.uuid4())
    stream_batches(spark, name, query, range(batches))
    spark.sql(f"DELETE FROM {name} WHERE email = '{ERASED}'")
    return name, query


def rows(spark: SparkSession, name: str) -> list[tuple[int, str, int]]:
    spark.sql(f"REFRESH TABLE {name}")
    return sorted((int(r[0]), str(r[1]), int(r[2])) for r in spark.sql(f"SELECT * FROM {name}").collect())


def count(spark: SparkSession, sql: str) -> int:
    return int(spark.sql(sql).collect()[0][0])


def test_compaction_keeps_rows_cuts_files_and_keeps_markers(
    spark: SparkSession, warehouse: CatalogConfig, tmp_path: Path
) -> None:
    name, query = streamed_table(spark, 60)
    spark.sql(f"ALTER TABLE {name} WRITE ORDERED BY id")
    before = rows(spark, name)
    files_before = count(spark, f"SELECT count(*) FROM {name}.files WHERE content = 0")
    manifests_before = count(spark, f"SELECT count(*) FROM {name}.manifests")
    assert files_before >= 60 and manifests_before >= 60
    maintenance = {"snapshotRetentionHours": 0, "retainLastSnapshots": 3, "orphanGraceHours": 0, "strategy": "sort"}

    code, report, output = run_job(
        registry(warehouse, [{"name": name, "columns": {"email": "email"}}], maintenance),
        tmp_path,
        "--allow-short-orphan-grace",
    )

    assert code == 0, output
    assert "maintain-tables: " + name + ": compaction" in output  # progress on stderr
    table = report["tables"][0]
    assert table["result"] == "ok"
    assert table["compaction"]["strategyUsed"] == "sort"
    assert table["before"]["dataFiles"] == files_before
    assert table["after"]["dataFiles"] < files_before
    assert table["after"]["deleteFiles"] == 0
    assert table["after"]["manifests"] < manifests_before
    assert table["expiry"]["snapshotsExpired"] >= 55
    assert set(table["seconds"]) >= {"compaction", "manifests", "expiry", "metadata", "orphans"}
    assert rows(spark, name) == before
    assert count(spark, f"SELECT count(*) FROM {name}.files WHERE content = 0") == table["after"]["dataFiles"]
    assert count(spark, f"SELECT count(*) FROM {name}.snapshots") <= 3 + 1
    # The erased subject: gone from the current rows and from every snapshot kept.
    assert count(spark, f"SELECT count(*) FROM {name} WHERE email = '{ERASED}'") == 0
    for snapshot in [int(r[0]) for r in spark.sql(f"SELECT snapshot_id FROM {name}.snapshots").collect()]:
        assert count(spark, f"SELECT count(*) FROM {name} VERSION AS OF {snapshot} WHERE email = '{ERASED}'") == 0
    # The markers survive expiry: a replay of any batch is recognised and skipped.
    assert table["expiry"]["streamMarkersFolded"] == {query: 59}
    assert all(already_committed(spark, name, query, batch) for batch in (0, 30, 59))
    assert not append_once(spark.createDataFrame(batch_rows(12), SCHEMA), name, query, 12)
    assert not already_committed(spark, name, query, 60)


def test_appends_run_through_maintenance_without_loss_or_duplicates(
    spark: SparkSession, warehouse: CatalogConfig, tmp_path: Path
) -> None:
    name, query = streamed_table(spark, 40)
    failures: list[BaseException] = []
    done = threading.Event()
    appended = [40]  # the next batch id

    def keep_appending() -> None:
        # Micro-batches from before the job starts Spark until after it has finished.
        try:
            while not done.is_set() and appended[0] < 1000:
                stream_batches(spark, name, query, range(appended[0], appended[0] + 1))
                appended[0] += 1
        except BaseException as error:  # reported by the test below
            failures.append(error)

    appender = threading.Thread(target=keep_appending, name="micro-batches")
    appender.start()
    # The orphan grace stays at its floor (1 h): with 0, files of a batch still being written are "orphans", and
    # deleting them breaks that batch's commit (seen here once: the table then referenced a missing file).
    maintenance = {"snapshotRetentionHours": 0, "retainLastSnapshots": 1, "orphanGraceHours": 1, "strategy": "sort"}
    try:
        code, report, output = run_job(
            registry(warehouse, [{"name": name, "columns": {"email": "email"}}], maintenance), tmp_path
        )
    finally:
        done.set()
        appender.join()

    assert not failures, failures
    assert code == 0, output
    table = report["tables"][0]
    # Sort was asked for, but the table has no write order: binpack, and the report says so.
    assert table["compaction"]["strategyUsed"] == "binpack" and "write order" in table["compaction"]["note"]
    batches = appended[0]
    assert batches > 40
    # Every batch replayed after maintenance (as after a crash) is recognised: nothing appended twice.
    for batch in range(0, batches, 3):
        assert not append_once(spark.createDataFrame(batch_rows(batch), SCHEMA), name, query, batch)
    expected = sorted(row for batch in range(batches) for row in batch_rows(batch) if row[1] != ERASED or batch >= 40)
    assert rows(spark, name) == expected


def test_bad_registry_exits_2_naming_the_key(warehouse: CatalogConfig, tmp_path: Path) -> None:
    table = {"name": "local.maint.any", "columns": {"email": "email"}, "maintenance": {"strategy": "zorder"}}
    code, _, output = run_job(registry(warehouse, [table], {}), tmp_path)
    assert code == 2
    assert "tables[0].maintenance.strategy" in output

    code, _, output = run_job(
        registry(warehouse, [{"name": "local.maint.any", "columns": COLUMNS}], {"orphanGraceHours": 0.5}), tmp_path
    )
    assert code == 2
    assert "maintenance.orphanGraceHours: must be at least 1" in output


def test_where_leaves_the_partitions_still_being_written_alone(
    spark: SparkSession, warehouse: CatalogConfig, tmp_path: Path
) -> None:
    name, _ = streamed_table(spark, 20)

    def files(condition: str) -> set[str]:
        spark.sql(f"REFRESH TABLE {name}")
        return {
            str(r[0])
            for r in spark.sql(f"SELECT file_path FROM {name}.files WHERE content = 0 AND {condition}").collect()
        }

    recent = files("readable_metrics.batch.lower_bound >= 10")
    older = files("readable_metrics.batch.upper_bound < 10")
    before = rows(spark, name)
    table = {"name": name, "columns": COLUMNS, "maintenance": {"where": "batch < 10", "retainLastSnapshots": 1}}
    code, report, output = run_job(registry(warehouse, [table], {}), tmp_path)

    assert code == 0, output
    assert report["tables"][0]["compaction"]["dataFilesRewritten"] == len(older)
    assert recent <= files("true")  # the files of batches 10+ are untouched
    assert not older & files("true")
    assert rows(spark, name) == before


def test_a_where_spark_cannot_evaluate_exits_2_naming_the_key_before_any_step(
    spark: SparkSession, warehouse: CatalogConfig, tmp_path: Path
) -> None:
    name, _ = streamed_table(spark, 3)
    snapshots = count(spark, f"SELECT count(*) FROM {name}.snapshots")
    table = {"name": name, "columns": COLUMNS, "maintenance": {"where": "no_such_column < 5"}}
    code, report, output = run_job(registry(warehouse, [table], {}), tmp_path)
    assert code == 2, output
    assert "tables[0].maintenance.where: not a condition Spark can evaluate" in output
    assert report == {}
    spark.sql(f"REFRESH TABLE {name}")
    assert count(spark, f"SELECT count(*) FROM {name}.snapshots") == snapshots  # nothing done


def test_settings_merge_global_and_per_table() -> None:
    catalog = {"name": "local", "type": "jdbc", "uri": "c.db", "warehouse": "w"}
    config = parse_registry(
        {
            "catalog": catalog,
            "maintenance": {"snapshotRetentionHours": 24, "targetFileSizeBytes": 1024},
            "tables": [
                {"name": "local.a.b", "columns": COLUMNS, "maintenance": {"targetFileSizeBytes": 2048}},
                {"name": "local.a.c", "columns": COLUMNS},
            ],
        }
    )
    first, second = config.tables
    assert (first.settings.target_file_size_bytes, second.settings.target_file_size_bytes) == (2048, 1024)
    assert first.settings.snapshot_retention_hours == second.settings.snapshot_retention_hours == 24
    assert second.settings.retain_last == 10 and second.settings.metadata_previous_versions_max == 10
    assert second.settings.orphan_grace_hours == 72
    with pytest.raises(JobConfigError, match=r"^tables\[1\]\.maintenance: holds a key") as raised:
        parse_registry(
            {
                "catalog": catalog,
                "tables": [
                    {"name": "local.a.b", "columns": COLUMNS},
                    {"name": "local.a.c", "columns": COLUMNS, "maintenance": {"secret-x": 1}},
                ],
            }
        )
    assert "secret-x" not in str(raised.value)
