"""Table operations the erasure job and the maintenance job both run on Iceberg tables that a stream may be
appending to: commits retried after a conflict with a concurrent writer, the current snapshot, orphan-file and
old-metadata removal through Iceberg's Java API (Py4J).

Everything here handles table names, snapshot ids, file locations and counts, never a row value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from .retry import Backoff, retry

T = TypeVar("T")

#: Waits between attempts of a commit that conflicted with a concurrent writer (a streaming append).
COMMIT_CONFLICT_BACKOFF = Backoff(base_seconds=0.5, max_seconds=10.0)


def is_commit_conflict(error: Exception) -> bool:
    # Py4J wraps Iceberg's exceptions: only their text tells a conflict from another failure.
    text = str(error)
    return any(
        marker in text
        for marker in ("ValidationException", "CommitFailedException", "Found conflicting files", "conflicting")
    )


def is_stale_read(error: Exception) -> bool:
    """A file of the table state an action loaded is gone: a concurrent commit moved the table on and deleted it
    (write.metadata.delete-after-commit removes old metadata.json files). Loading the table again helps."""
    text = str(error)
    return "NotFoundException" in text or "FileNotFoundException" in text


def retry_on_conflict(action: Callable[[], T], attempts: int, report: dict[str, Any], stale_reads: bool = False) -> T:
    """Runs `action`, again after a commit conflict with a concurrent writer (with backoff), and with `stale_reads`
    after a read of a table state a concurrent commit deleted files of; counts the retries in
    `report["commitConflictsRetried"]`."""

    def count(_error: Exception, _attempt: int) -> None:
        report["commitConflictsRetried"] = report.get("commitConflictsRetried", 0) + 1

    def retryable(error: Exception) -> bool:
        return is_commit_conflict(error) or (stale_reads and is_stale_read(error))

    return retry(action, attempts=attempts, backoff=COMMIT_CONFLICT_BACKOFF, retryable=retryable, on_retry=count)


def utc_now_literal() -> str:
    """Now as a Spark SQL timestamp literal with its zone written out: a literal without one is read in the
    session's time zone (the JVM's unless set), which would move an expiry cutoff by hours off UTC."""
    return f"TIMESTAMP '{datetime.now(UTC).strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]}UTC'"


def refreshed(spark: Any, name: str, action: Callable[[], T]) -> Callable[[], T]:
    """`action` after dropping the session's cached copy of the table. A cached table more than
    previous-versions-max commits behind (a stream commits every few seconds) names a metadata.json that
    delete-after-commit has removed: reading its metadata tables then fails with NotFoundException."""

    def run() -> T:
        spark.sql(f"REFRESH TABLE {name}")
        return action()

    return run


def current_snapshot(spark: Any, table: str) -> int | None:
    rows = spark.sql(
        f"SELECT snapshot_id FROM {table}.history WHERE is_current_ancestor ORDER BY made_current_at DESC LIMIT 1"
    ).collect()
    return int(rows[0][0]) if rows else None


def load_table(spark: Any, name: str) -> Any:
    """The Java org.apache.iceberg.Table of `name` (for the actions and metadata the SQL procedures do not offer)."""
    return spark._jvm.org.apache.iceberg.spark.Spark3Util.loadIcebergTable(spark._jsparkSession, name)


def remove_orphans(spark: Any, name: str, older_than_ms: int) -> int:
    """Iceberg's DeleteOrphanFiles action (the procedure refuses a cutoff under 24 hours); returns the count."""
    jvm = spark._jvm
    result = (
        jvm.org.apache.iceberg.spark.actions.SparkActions.get(spark._jsparkSession)
        .deleteOrphanFiles(load_table(spark, name))
        .olderThan(older_than_ms)
        .execute()
    )
    return sum(1 for _ in result.orphanFileLocations())


def remove_previous_metadata(spark: Any, name: str, keep: int = 0) -> int:
    """Deletes the metadata.json files the current metadata still lists as previous versions, all but the newest
    `keep` (the erasure job keeps none: the old table states they describe are gone, and a certificate should not
    leave them to chance). Returns how many it deleted."""
    table = load_table(spark, name)
    previous = list(table.operations().current().previousFiles())  # oldest first
    doomed = previous[: max(0, len(previous) - keep)]
    for entry in doomed:
        table.io().deleteFile(entry.file())
    return len(doomed)


#: Table properties a job changes for one statement are saved beside them under this prefix (the value before, or
#: ABSENT), in the same ALTER: a job killed before it restored them leaves the record, and the next run restores.
RESTORE_PREFIX = "spark-udfs.restore."
ABSENT = "(absent)"


def restore_table_properties(spark: Any, name: str) -> dict[str, str]:
    """Puts back the properties a `table_properties_during` left changed (its job failed or was killed): each saved
    value set again, or the property removed where it was absent, then the records removed. Set before unset, so
    a kill between the two leaves the records for the next run (the restore is idempotent). Returns what it
    restored."""
    from .iceberg import set_table_properties, table_properties

    saved = {
        key.removeprefix(RESTORE_PREFIX): value
        for key, value in table_properties(spark, name).items()
        if key.startswith(RESTORE_PREFIX)
    }
    if not saved:
        return {}
    present = {key: value for key, value in saved.items() if value != ABSENT}
    removed = [key for key, value in saved.items() if value == ABSENT] + [RESTORE_PREFIX + key for key in saved]
    set_table_properties(spark, name, present)
    spark.sql(f"ALTER TABLE {name} UNSET TBLPROPERTIES IF EXISTS ({', '.join(repr(key) for key in removed)})")
    return saved


@contextmanager
def table_properties_during(spark: Any, name: str, wanted: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """Sets `wanted` on the table for the statements inside, and restores each changed property exactly as it was
    afterwards (its value, or absent), on failure too. The values before are recorded in the table itself in the
    same commit (RESTORE_PREFIX), so a run killed in between is restored by the next one. Yields what it changed."""
    from .iceberg import set_table_properties, table_properties

    restore_table_properties(spark, name)  # a killed run's changes first: otherwise they would pass for the originals
    current = table_properties(spark, name)
    changed = {key: value for key, value in wanted.items() if current.get(key) != value}
    if changed:
        records = {RESTORE_PREFIX + key: current.get(key, ABSENT) for key in changed}
        set_table_properties(spark, name, {**changed, **records})
    try:
        yield changed
    finally:
        if changed:
            restore_table_properties(spark, name)
