"""The table maintenance job: keep the registered Iceberg tables fast and small beside the streaming job.

    maintain-tables --registry registry.json --report report.json [--table local.crm.events] [--master local[2]]
    spark-submit spark-udfs/entry/maintain.py --registry s3://…/registry.json --report s3://…/report.json

The registry is the service's table registry (examples/erasure-registry.json) with an optional `maintenance`
section, global and per table (a table's keys override the global ones):

    {"catalog": {...}, "maintenance": {"snapshotRetentionHours": 168},
     "tables": [{"name": "local.crm.events", "columns": {...},
                 "maintenance": {"strategy": "sort", "where": "day < current_date()"}}]}

Per table, in this order:
 1. Old metadata: `write.metadata.delete-after-commit.enabled` and `write.metadata.previous-versions-max`
    (a lower value already set, e.g. the erasure job's 1, is kept), so this run's own commits trim the log.
 2. Compaction: rewrite_data_files, binpack, or sort by the table's write order (binpack, and the report says so,
    when the table has none), target file size, partial progress, an optional `where` to skip partitions still
    being written. It plans from the current snapshot: rows an erasure deleted are not in it and cannot return.
 3. rewrite_manifests: fewer, larger manifests clustered by partition (faster planning).
 4. Snapshot expiry: the stream's exactly-once markers are folded into table properties first
    (spark_udfs.jobs.markers), then the snapshots older than the retention, beyond the newest N, that the fold
    saw are expired by id (a snapshot committed after the fold is never expired by this run, so its marker
    cannot be lost between the fold and the expiry).
 5. Orphan files older than the grace period (never under an hour but with --allow-short-orphan-grace, for
    tests: a streaming write in flight has files not committed yet).
Every commit that conflicts with a concurrent writer (a streaming append, an erasure DELETE) is retried; Iceberg's
optimistic commit is what serialises this job with the erasure job (see the README's "Table maintenance").

The report (JSON, --report) holds per table: data files, bytes, delete files, manifests, snapshots and metadata
log entries before and after; what each step did; seconds per step; result. Table names, counts and durations
only, never a value. Exit 0 when every table was maintained, 1 when some table failed (named on stderr in one
line), 2 for a bad registry or option (naming the key).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from ..iceberg import write_text_whole
from ..iceberg_ops import refreshed
from ..jobs.config import JobConfigError, Section, check_registry, check_table_name, parse_catalog, read_json
from ..jobs.progress import JobProgress, step
from ..jobs.session import CatalogConfig, SessionConfigError

LABEL = "maintain-tables"
Strategy = Literal["binpack", "sort"]
T = TypeVar("T")
HOUR_SECONDS = 3600
#: Commit attempts per step against concurrent writers (a stream commits every few seconds).
MAX_COMMIT_ATTEMPTS = 8
#: Snapshot ids per expire_snapshots call (the ids go into the SQL text).
EXPIRE_CHUNK = 500
#: The registry keys a `maintenance` section may hold (to the settings field they set).
SETTING_KEYS = {
    "strategy": "strategy",
    "targetFileSizeBytes": "target_file_size_bytes",
    "partialProgress": "partial_progress",
    "where": "where",
    "snapshotRetentionHours": "snapshot_retention_hours",
    "retainLastSnapshots": "retain_last",
    "metadataPreviousVersionsMax": "metadata_previous_versions_max",
    "orphanGraceHours": "orphan_grace_hours",
}


@dataclass(frozen=True)
class MaintenanceSettings:
    strategy: Strategy = "binpack"
    #: None: the table's write.target-file-size-bytes (Iceberg's default 512 MB).
    target_file_size_bytes: int | None = None
    partial_progress: bool = True
    #: A Spark SQL condition on the table's columns: only matching data is compacted (skip partitions being written).
    where: str | None = None
    snapshot_retention_hours: float = 7 * 24.0
    retain_last: int = 10
    metadata_previous_versions_max: int = 10
    orphan_grace_hours: float = 72.0


@dataclass(frozen=True)
class MaintainedTable:
    name: str
    settings: MaintenanceSettings
    #: Where this table's settings are in the registry (for an error naming the key).
    path: str


@dataclass(frozen=True)
class MaintenanceConfig:
    catalog: CatalogConfig
    tables: tuple[MaintainedTable, ...]
    master: str | None = None


def _settings(section: Section, base: MaintenanceSettings, allow_short_grace: bool) -> MaintenanceSettings:
    unknown = set(section.values) - set(SETTING_KEYS)
    if unknown:  # the message never quotes the unknown key itself (caller input)
        raise JobConfigError(f"{section.path}: holds a key this job does not know (known: {', '.join(SETTING_KEYS)})")
    strategy = section.text("strategy", base.strategy)
    if strategy not in ("binpack", "sort"):
        raise JobConfigError(f"{section.key('strategy')}: must be binpack or sort")
    target = section.optional_integer("targetFileSizeBytes")
    if target is not None and target < 1:
        raise JobConfigError(f"{section.key('targetFileSizeBytes')}: must be a positive number of bytes")
    where = section.optional_text("where")
    if where is not None and (not where.strip() or ";" in where):
        raise JobConfigError(f"{section.key('where')}: must be one non-empty SQL condition")
    retention = section.number("snapshotRetentionHours", base.snapshot_retention_hours)
    if retention < 0:
        raise JobConfigError(f"{section.key('snapshotRetentionHours')}: must be 0 or more")
    retain_last = section.integer("retainLastSnapshots", base.retain_last)
    if retain_last < 1:
        raise JobConfigError(f"{section.key('retainLastSnapshots')}: must be at least 1")
    versions = section.integer("metadataPreviousVersionsMax", base.metadata_previous_versions_max)
    if versions < 1:
        raise JobConfigError(f"{section.key('metadataPreviousVersionsMax')}: must be at least 1")
    grace = section.number("orphanGraceHours", base.orphan_grace_hours)
    if grace < 0 or (grace < 1 and not allow_short_grace):
        # An orphan younger than that may be a file of a write still in flight (a streaming batch).
        raise JobConfigError(f"{section.key('orphanGraceHours')}: must be at least 1")
    return MaintenanceSettings(
        strategy="sort" if strategy == "sort" else "binpack",
        target_file_size_bytes=target if target is not None else base.target_file_size_bytes,
        partial_progress=section.flag("partialProgress", base.partial_progress),
        where=where if where is not None else base.where,
        snapshot_retention_hours=retention,
        retain_last=retain_last,
        metadata_previous_versions_max=versions,
        orphan_grace_hours=grace,
    )


def parse_registry(
    raw: Mapping[str, object], only: tuple[str, ...] = (), allow_short_orphan_grace: bool = False
) -> MaintenanceConfig:
    """The registered tables with their maintenance settings; `only` limits it to some of them (--table)."""
    registry = Section(raw)
    catalog = parse_catalog(registry.section("catalog").values)
    defaults = _settings(registry.section("maintenance"), MaintenanceSettings(), allow_short_orphan_grace)
    tables = []
    for table in registry.objects("tables"):
        name = check_table_name(table.text("name", ""), catalog, table.key("name"))
        settings = _settings(table.section("maintenance"), defaults, allow_short_orphan_grace)
        tables.append(MaintainedTable(name, settings, table.key("maintenance")))
    if not tables:
        raise JobConfigError("tables: at least one registered table")
    check_registry(raw)
    if only:
        names = {t.name for t in tables}
        if any(name not in names for name in only):
            raise JobConfigError("--table: names a table the registry does not list")
        tables = [t for t in tables if t.name in only]
    return MaintenanceConfig(catalog, tuple(tables))


def _sql_text(value: str) -> str:
    """A Spark SQL string literal of an operator's setting (a `where` condition): quotes and backslashes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def table_stats(spark: Any, name: str) -> dict[str, int]:
    """What the current snapshot references, and how much history the table keeps."""
    by_content = {
        int(row["content"]): (int(row["files"]), int(row["bytes"]))
        for row in spark.sql(
            f"SELECT content, count(*) AS files, coalesce(sum(file_size_in_bytes), 0) AS bytes "
            f"FROM {name}.files GROUP BY content"
        ).collect()
    }
    data_files, data_bytes = by_content.get(0, (0, 0))

    def count(sql: str) -> int:
        return int(spark.sql(sql).collect()[0][0])

    return {
        "dataFiles": data_files,
        "dataBytes": data_bytes,
        # 1: position deletes, 2: equality deletes
        "deleteFiles": sum(files for content, (files, _) in by_content.items() if content != 0),
        "manifests": count(f"SELECT count(*) FROM {name}.manifests"),
        "snapshots": count(f"SELECT count(*) FROM {name}.snapshots"),
        "metadataLogEntries": count(f"SELECT count(*) FROM {name}.metadata_log_entries"),
    }


def _timed(seconds: dict[str, float], step_name: str, action: Callable[[], T]) -> T:
    started = time.monotonic()
    try:
        return action()
    finally:
        seconds[step_name] = round(time.monotonic() - started, 3)


def _strategy(spark: Any, name: str, wanted: Strategy) -> tuple[Strategy, str | None]:
    """The strategy to use, and a note when it is not the one asked for (sort on a table without a write order)."""
    from ..iceberg_ops import load_table

    if wanted == "sort" and load_table(spark, name).sortOrder().isUnsorted():
        return "binpack", "the table has no write order (ALTER TABLE … WRITE ORDERED BY …): compacted with binpack"
    return wanted, None


def _compact(spark: Any, catalog: str, table: MaintainedTable, report: dict[str, Any]) -> dict[str, Any]:
    from ..iceberg_ops import retry_on_conflict

    settings = table.settings
    strategy, note = _strategy(spark, table.name, settings.strategy)
    options = {"partial-progress.enabled": "true" if settings.partial_progress else "false"}
    if settings.partial_progress:
        options["partial-progress.max-commits"] = "10"
    if settings.target_file_size_bytes is not None:
        options["target-file-size-bytes"] = str(settings.target_file_size_bytes)
    # Delete files whose data files were rewritten (or are gone) no longer apply: drop them in the same run.
    options["remove-dangling-deletes"] = "true"
    arguments = [
        f"table => '{table.name.split('.', 1)[1]}'",
        f"strategy => '{strategy}'",
        "options => map(" + ", ".join(f"'{key}', '{value}'" for key, value in options.items()) + ")",
    ]
    if settings.where:
        arguments.append(f"where => {_sql_text(settings.where)}")
    sql = f"CALL {catalog}.system.rewrite_data_files({', '.join(arguments)})"
    result = retry_on_conflict(refreshed(spark, table.name, _collect(spark, sql)), MAX_COMMIT_ATTEMPTS, report, True)
    done = result[0].asDict() if result else {}
    compaction: dict[str, Any] = {
        "strategy": settings.strategy,
        "strategyUsed": strategy,
        "dataFilesRewritten": int(done.get("rewritten_data_files_count") or 0),
        "dataFilesAdded": int(done.get("added_data_files_count") or 0),
        "bytesRewritten": int(done.get("rewritten_bytes_count") or 0),
        "dataFilesFailed": int(done.get("failed_data_files_count") or 0),
        "deleteFilesRemoved": int(done.get("removed_delete_files_count") or 0),
    }
    if note:
        compaction["note"] = note
    return compaction


def _rewrite_manifests(spark: Any, catalog: str, name: str, report: dict[str, Any]) -> dict[str, int]:
    from ..iceberg_ops import retry_on_conflict

    sql = f"CALL {catalog}.system.rewrite_manifests(table => '{name.split('.', 1)[1]}')"
    row = retry_on_conflict(refreshed(spark, name, _collect(spark, sql)), MAX_COMMIT_ATTEMPTS, report, True)[0]
    return {
        "manifestsRewritten": int(row["rewritten_manifests_count"]),
        "manifestsAdded": int(row["added_manifests_count"]),
    }


def expirable_snapshots(spark: Any, name: str, cutoff_ms: int, retain_last: int) -> list[int]:
    """The snapshots committed before `cutoff_ms`, except the newest `retain_last`, the current one and any a tag
    or branch references (Iceberg refuses to expire those)."""
    from ..iceberg_ops import current_snapshot

    rows = spark.sql(
        f"SELECT snapshot_id, unix_millis(committed_at) AS at FROM {name}.snapshots ORDER BY committed_at DESC"
    ).collect()
    kept = {int(row["snapshot_id"]) for row in rows[:retain_last]}
    kept |= {int(row[0]) for row in spark.sql(f"SELECT snapshot_id FROM {name}.refs").collect()}
    current = current_snapshot(spark, name)
    if current is not None:
        kept.add(current)
    return [
        int(row["snapshot_id"]) for row in rows if int(row["at"]) < cutoff_ms and int(row["snapshot_id"]) not in kept
    ]


def _expire(spark: Any, catalog: str, table: MaintainedTable, report: dict[str, Any]) -> dict[str, Any]:
    from ..iceberg_ops import retry_on_conflict
    from ..jobs.markers import fold_markers

    settings = table.settings
    cutoff_ms = int(time.time() * 1000 - settings.snapshot_retention_hours * HOUR_SECONDS * 1000)
    # The candidates are read before the fold: the fold sees them all (and maybe newer ones), so every marker in a
    # snapshot this run expires is folded first. Expiring by id (not by age) keeps a snapshot committed after the
    # candidates were read, whatever its timestamp, so a batch committed meanwhile keeps its marker.
    candidates = retry_on_conflict(
        refreshed(spark, table.name, lambda: expirable_snapshots(spark, table.name, cutoff_ms, settings.retain_last)),
        MAX_COMMIT_ATTEMPTS,
        report,
        True,
    )
    folded = retry_on_conflict(
        refreshed(spark, table.name, lambda: fold_markers(spark, table.name)), MAX_COMMIT_ATTEMPTS, report, True
    )
    deleted: dict[str, int] = {}
    short = table.name.split(".", 1)[1]
    for start in range(0, len(candidates), EXPIRE_CHUNK):
        ids = ", ".join(str(snapshot) for snapshot in candidates[start : start + EXPIRE_CHUNK])
        sql = (
            f"CALL {catalog}.system.expire_snapshots(table => '{short}', "
            f"older_than => TIMESTAMP '1970-01-02 00:00:00', snapshot_ids => array({ids}))"
        )
        row = retry_on_conflict(refreshed(spark, table.name, _collect(spark, sql)), MAX_COMMIT_ATTEMPTS, report, True)[
            0
        ]
        for key, value in row.asDict().items():
            deleted[key] = deleted.get(key, 0) + int(value)
    remaining = {int(row[0]) for row in spark.sql(f"SELECT snapshot_id FROM {table.name}.snapshots").collect()}
    return {
        "snapshotsExpired": sum(1 for snapshot in candidates if snapshot not in remaining),
        "streamMarkersFolded": folded,
        "filesDeletedByExpiry": deleted,
    }


def _collect(spark: Any, sql: str) -> Callable[[], Any]:
    return lambda: spark.sql(sql).collect()


def _metadata_properties(spark: Any, name: str, wanted_max: int) -> dict[str, str]:
    """Turns on delete-after-commit with the configured previous-versions-max, unless the table already keeps
    fewer (the erasure job sets 1: its certificate keeps no old table state). Returns what it set."""
    from ..iceberg import ensure_table_properties, table_properties

    current = table_properties(spark, name).get("write.metadata.previous-versions-max")
    keep = min(wanted_max, int(current)) if current and current.isdigit() else wanted_max
    return ensure_table_properties(
        spark,
        name,
        {"write.metadata.delete-after-commit.enabled": "true", "write.metadata.previous-versions-max": str(keep)},
    )


def maintain_table(
    spark: Any, catalog: str, table: MaintainedTable, started_ms: int, report: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Runs the steps on one table, filling `report` as they go (a failure leaves the steps done in it)."""
    from ..iceberg_ops import is_stale_read, remove_orphans, remove_previous_metadata, retry_on_conflict

    name = table.name
    settings = table.settings
    seconds: dict[str, float] = {}
    if report is None:
        report = {}
    report.update({"table": name, "startedAt": datetime.now(UTC).isoformat(), "commitConflictsRetried": 0})
    report["seconds"] = seconds

    def stats() -> dict[str, int]:
        return retry_on_conflict(
            refreshed(spark, name, lambda: table_stats(spark, name)), MAX_COMMIT_ATTEMPTS, report, True
        )

    report["before"] = _timed(seconds, "stats", stats)

    def say(message: str) -> None:
        step(LABEL, f"{name}: {message}")

    say("metadata properties")
    report["propertiesSet"] = _timed(
        seconds, "properties", lambda: _metadata_properties(spark, name, settings.metadata_previous_versions_max)
    )
    say(f"compaction ({settings.strategy})")
    report["compaction"] = _timed(seconds, "compaction", lambda: _compact(spark, catalog, table, report))
    say("rewrite manifests")
    report["manifests"] = _timed(seconds, "manifests", lambda: _rewrite_manifests(spark, catalog, name, report))
    say("expire snapshots (stream markers folded first)")
    report["expiry"] = _timed(seconds, "expiry", lambda: _expire(spark, catalog, table, report))
    say("old metadata files")
    report["previousMetadataFilesDeleted"] = _timed(
        seconds, "metadata", lambda: remove_previous_metadata(spark, name, keep=settings.metadata_previous_versions_max)
    )
    say("orphan files")
    grace_ms = int(settings.orphan_grace_hours * HOUR_SECONDS * 1000)
    # The action loads the table's metadata log; a stream commit meanwhile may delete an old metadata.json of it
    # (delete-after-commit): loaded again, the table is consistent. Files committed meanwhile are younger than
    # the grace period, so never orphans.
    try:
        report["orphanFilesRemoved"] = _timed(
            seconds,
            "orphans",
            lambda: retry_on_conflict(
                refreshed(spark, name, lambda: remove_orphans(spark, name, started_ms - grace_ms)),
                MAX_COMMIT_ATTEMPTS,
                report,
                stale_reads=True,
            ),
        )
    except Exception as error:
        if not is_stale_read(error):
            raise
        # A stream committing faster than the action reads the metadata log deletes an old metadata.json under it
        # on every attempt. Orphans are older than the grace period: they wait for the next run, the table is fine.
        report["orphanFilesRemoved"] = 0
        report["orphansDeferred"] = "the table moved on while its metadata was read, at every attempt; next run"
        say("orphan files deferred: a concurrent writer kept moving the table on")
    report["after"] = stats()
    report["finishedAt"] = datetime.now(UTC).isoformat()
    report["result"] = "ok"
    return report


def _check_where(spark: Any, table: MaintainedTable) -> None:
    """A `where` Spark cannot read on this table is a configuration mistake (exit 2), found before any work."""
    where = table.settings.where
    if not where or not spark.catalog.tableExists(table.name):
        return  # a missing table fails as a table, not as the configuration
    try:
        spark.sql(f"SELECT 1 FROM {table.name} WHERE {where} LIMIT 0").collect()
    except Exception as error:
        if type(error).__name__ in ("AnalysisException", "ParseException"):
            raise JobConfigError(f"{table.path}.where: not a condition Spark can evaluate on {table.name}") from None
        raise


def _error_text(error: Exception) -> str:
    """The error's class and first line; for a Java error (Py4J) the Java exception's. Iceberg's messages name
    files and snapshots, never values."""
    java = getattr(error, "java_exception", None)
    text = str(java.toString()) if java is not None else str(error)
    return f"{type(error).__name__}: {(text.strip().splitlines() or [''])[0][:300]}"


def run(config: MaintenanceConfig) -> dict[str, Any]:
    from ..jobs.session import build_session

    started = datetime.now(UTC)
    started_ms = int(started.timestamp() * 1000)
    step(LABEL, "starting Spark")
    spark = build_session(config.catalog, app_name=LABEL, master=config.master)
    spark.sparkContext.setLogLevel("ERROR")
    tables: list[dict[str, Any]] = []
    try:
        for table in config.tables:
            _check_where(spark, table)
        with JobProgress(LABEL):
            for table in config.tables:
                report: dict[str, Any] = {"table": table.name}
                tables.append(report)
                try:
                    maintain_table(spark, config.catalog.name, table, started_ms, report)
                except Exception as error:  # one table's failure does not stop the others
                    report.update(result="failed", error=_error_text(error), finishedAt=datetime.now(UTC).isoformat())
                    step(LABEL, f"{table.name}: failed ({report['error']})")
    finally:
        spark.stop()
    failed = [t["table"] for t in tables if t["result"] != "ok"]
    return {
        "startedAt": started.isoformat(),
        "finishedAt": datetime.now(UTC).isoformat(),
        "result": "failed" if failed else "ok",
        "failedTables": failed,
        "tables": tables,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=LABEL,
        description="Maintain the registered Iceberg tables: compaction, manifests, snapshot expiry (stream markers "
        "kept), old metadata and orphan files; a JSON report per table.",
        epilog="examples:\n"
        "  maintain-tables --registry examples/erasure-registry.json --report maintenance.json --master 'local[2]'\n"
        "  maintain-tables --registry registry.json --report report.json --table local.crm.events\n"
        "exit codes: 0 every table maintained, 1 some table failed (named on stderr), 2 bad registry or option",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--registry", required=True, help="the table registry (JSON) with optional maintenance sections"
    )
    parser.add_argument("--report", required=True, help="where to write the report (JSON, a path or s3:// URI)")
    parser.add_argument("--table", action="append", default=[], help="maintain only this registered table (repeatable)")
    parser.add_argument("--master", help="Spark master, e.g. local[2] (spark-submit sets it otherwise)")
    parser.add_argument(
        "--allow-short-orphan-grace",
        action="store_true",
        help="accept orphanGraceHours under 1 (tests only: a streaming write in flight has uncommitted files)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = parse_registry(read_json(args.registry), tuple(args.table), args.allow_short_orphan_grace)
        if args.master:
            config = replace(config, master=args.master)
        report = run(config)
    except (JobConfigError, SessionConfigError) as error:
        print(f"{LABEL}: registry: {error}", file=sys.stderr)
        return 2
    write_text_whole(args.report, json.dumps(report, indent=2))
    if report["failedTables"]:
        print(f"{LABEL}: failed: {', '.join(report['failedTables'])}", file=sys.stderr)
    print(json.dumps({"result": report["result"], "tables": len(report["tables"]), "report": args.report}))
    return 1 if report["failedTables"] else 0


if __name__ == "__main__":
    sys.exit(main())
