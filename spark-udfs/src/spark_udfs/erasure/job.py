"""The erasure job: remove data subjects from every registered Iceberg table, history included, and prove it.

    spark-submit spark-udfs/src/spark_udfs/erasure/job.py --order order.json --certificate certificate.json \
        [--progress progress.json]
    erase-subjects --order order.json --certificate certificate.json      (the package's console script)

The order (written by the service's erasure runner; it holds pseudonyms, never identifiers):

    {"runId": "...", "requestIds": ["..."],
     "subjects": [{"context": "email", "pseudonyms": ["s1.…", "s2.…"]}],        # one per key version still readable
     "tables": [{"name": "local.crm.customers", "columns": {"email": "email"}}],
     "catalog": {"name": "local", "type": "jdbc", ...}, "orphanGraceSeconds": 0, "refs": "drop"}

Per table, in this order (each step is needed; see the README's erasure section for why):
 1. DELETE the rows holding any of the pseudonyms in a column of the same context, copy-on-write, retried on
    commit conflicts with concurrent writers (a streaming append adds files the DELETE must also consider).
 2. Rewrite every data file that still has delete files (merge-on-read deletes applied), and drop the delete
    files that no longer apply: afterwards no live file holds the rows, and no delete file is needed.
 3. Tags and branches pin old snapshots and so old files: they are dropped (`refs`: "drop", the only policy);
    each is reported. Then the manifests that still list removed files are rewritten: such DELETED entries keep
    the removed file's column bounds, a 16-character prefix of a pseudonym when it was a file's lowest or highest.
 4. Fold the streaming job's batch markers into a table property (spark_udfs.jobs.markers), then expire every
    snapshot older than that moment but the current one: Iceberg deletes the data, delete and manifest files
    only those snapshots used.
 5. Delete orphan files (never committed, e.g. from failed writes) older than the job's start minus
    `orphanGraceSeconds`, with Iceberg's action API (the procedure refuses < 24 h), and old metadata.json files
    (metadata kept: the current one only, from now on).
 6. Verify: every file under the table location, raw and decoded, holds none of the pseudonyms; time travel to
    every remaining snapshot finds none; the other rows are all still there.
A re-run under the same run id (after a kill) certifies the whole run: the snapshot before the first attempt and
the rows every attempt deleted, from attempts.json beside the certificate (RunAttempts).
The certificate (JSON) records, per table, snapshots before and after, files rewritten and deleted, refs
changed, and the verification method and outcome. Exit 0 when every table verified, 1 otherwise, 2 for a bad
order.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from .. import contracts
from ..iceberg import read_text, set_table_properties, write_text_whole
from ..iceberg_ops import current_snapshot as _current_snapshot
from ..iceberg_ops import refreshed, utc_now_literal
from ..iceberg_ops import remove_orphans as _remove_orphans
from ..iceberg_ops import remove_previous_metadata as _remove_previous_metadata
from ..iceberg_ops import retry_on_conflict as _retry_on_conflict
from ..jobs.config import (
    JobConfigError,
    RegisteredTable,
    Section,
    parse_catalog,
    parse_registered_tables,
    read_json,
)
from ..jobs.session import CatalogConfig, SessionConfigError
from .scan import scan_table_files

#: Tags and branches pin old snapshots: the job drops them (the only policy the service asks for).
RefsPolicy = Literal["drop"]
#: Characters a pseudonym keeps as they are inside a SQL literal; every other one is written as \uXXXX.
_SQL_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


@dataclass(frozen=True)
class Subject:
    context: str
    pseudonyms: tuple[str, ...]


@dataclass(frozen=True)
class ErasureOrder:
    run_id: str
    request_ids: tuple[str, ...]
    subjects: tuple[Subject, ...]
    tables: tuple[RegisteredTable, ...]
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    orphan_grace_seconds: int = 3600
    refs: RefsPolicy = "drop"
    master: str | None = None
    max_commit_attempts: int = 5


@dataclass
class RunAttempts:
    """What earlier attempts of this run did, per table, kept in `attempts.json` beside the certificate: the
    snapshot before the run's first attempt and the rows every attempt deleted, and the rows an attempt was about
    to delete when it wrote the record (saved before its DELETE commits). A job killed after its DELETE and run
    again under the same run id finds the rows gone and the table's history moved on; from this record its
    certificate still covers the whole run. (Not in progress.json: the service reads that and shows it on the
    request.) Table names, snapshot ids and counts only."""

    location: str | None
    run_id: str
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)

    @staticmethod
    def beside(certificate: str) -> str:
        folder = certificate.rsplit("/", 1)[0] if "/" in certificate else "."
        return f"{folder}/attempts.json"

    @staticmethod
    def load(location: str | None, run_id: str) -> RunAttempts:
        text = _read_if_present(location) if location else None
        recorded: Any = json.loads(text) if text else {}
        if not isinstance(recorded, dict) or recorded.get("runId") != run_id:
            return RunAttempts(location, run_id)  # none yet, or another run's (a reused folder)
        return RunAttempts(location, run_id, dict(recorded.get("tables", {})))

    def record(self, table: str, entry: dict[str, Any]) -> None:
        self.tables[table] = entry
        if self.location:
            write_text_whole(self.location, json.dumps({"runId": self.run_id, "tables": self.tables}))


def _read_if_present(location: str) -> str | None:
    try:
        return read_text(location)
    except FileNotFoundError:
        return None
    except Exception as error:  # an S3 object that does not exist yet
        code = getattr(error, "response", {}).get("Error", {}).get("Code")
        if code in ("NoSuchKey", "404"):
            return None
        raise


def parse_order(raw: Mapping[str, object]) -> ErasureOrder:
    # The contract shared with the service (contracts/erasure-order.schema.json) first; the checks below add what
    # a schema cannot say (the tables are in the order's catalog).
    try:
        contracts.validate("erasure-order", raw)
    except contracts.ContractError as error:
        raise JobConfigError(f"{error.path}: {error.reason}") from None
    order = Section(raw)
    run_id = order.required_text("runId")
    request_ids = order.text_list("requestIds")
    subjects = []
    for subject in order.objects("subjects"):
        context = subject.optional_text("context")
        pseudonyms = subject.text_list("pseudonyms")
        if not context or not pseudonyms:
            raise JobConfigError(f"{subject.path}: needs a context and at least one pseudonym")
        # Any string: FPE pseudonyms of a custom alphabet may hold any character; _sql_string escapes them all.
        subjects.append(Subject(context, tuple(pseudonyms)))
    if not subjects:
        raise JobConfigError("subjects: at least one")
    catalog = parse_catalog(order.section("catalog").values)
    tables = parse_registered_tables(order, catalog)
    if order.text("refs", "drop") != "drop":
        raise JobConfigError("refs: must be drop")
    grace = order.integer("orphanGraceSeconds", 3600)
    if grace < 0:
        raise JobConfigError("orphanGraceSeconds: must be 0 or more")
    return ErasureOrder(run_id, tuple(request_ids), tuple(subjects), tables, catalog, grace, "drop")


def _sql_string(value: str) -> str:
    """A Spark SQL string literal holding exactly `value`: every character outside a plain alphabet becomes a
    \\uXXXX escape of its UTF-16 code units (as Java strings hold them), so no quote, backslash or newline of a
    pseudonym can end the literal."""
    escaped = []
    for char in value:
        if char in _SQL_PLAIN:
            escaped.append(char)
        else:
            units = char.encode("utf-16-be")
            escaped.extend(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2))
    return "'" + "".join(escaped) + "'"


def _condition(table: RegisteredTable, subjects: tuple[Subject, ...]) -> str | None:
    """SQL that matches the subjects' rows in the table, or None when no column has a subject's context."""
    parts = []
    for column, context in table.columns.items():
        values = sorted({p for s in subjects if s.context == context for p in s.pseudonyms})
        if values:
            parts.append(f"`{column}` IN ({', '.join(_sql_string(v) for v in values)})")
    return " OR ".join(parts) if parts else None


def erase_table(
    spark: Any, order: ErasureOrder, table: RegisteredTable, started_ms: int, attempts: RunAttempts | None = None
) -> dict[str, Any]:
    from ..jobs.markers import fold_markers

    attempts = attempts or RunAttempts(None, order.run_id)

    name = table.name
    short = name.split(".", 1)[1]
    catalog = order.catalog.name
    condition = _condition(table, order.subjects)
    pseudonyms = sorted({p for s in order.subjects if s.context in table.columns.values() for p in s.pseudonyms})
    # Snapshot ids and counts are Java longs: the certificate carries them as decimal strings (contracts.int64).
    earlier = attempts.tables.get(name)
    report: dict[str, Any] = {
        "table": name,
        # The snapshot before the run's first attempt: a re-run's current one may already be after the DELETE.
        "snapshotBefore": earlier["snapshotBefore"] if earlier else contracts.int64(_current_snapshot(spark, name)),
        "startedAt": datetime.now(UTC).isoformat(),
        "commitConflictsRetried": 0,
    }
    others = f"NOT ({condition})" if condition else "true"
    other_rows_before = int(spark.sql(f"SELECT count(*) FROM {name} WHERE {others}").collect()[0][0])
    report["otherRowsBefore"] = contracts.count(other_rows_before)

    # Copy-on-write for this job's DELETE, and only the current metadata.json kept from now on.
    set_table_properties(
        spark,
        name,
        {
            "write.delete.mode": "copy-on-write",
            "write.metadata.delete-after-commit.enabled": "true",
            "write.metadata.previous-versions-max": "1",
        },
    )
    deleted = 0
    if condition:
        deleted = int(spark.sql(f"SELECT count(*) FROM {name} WHERE {condition}").collect()[0][0])
    earlier_deleted = int(earlier["rowsDeleted"]) if earlier else 0
    pending = int(earlier.get("pendingDelete", 0)) if earlier else 0
    # An attempt stopped around its DELETE: the DELETE is one commit, so its rows are all gone (it committed:
    # they count for the run) or all still here (it did not: this attempt deletes them).
    earlier_deleted += pending - min(pending, deleted)
    entry = {"snapshotBefore": report["snapshotBefore"], "rowsDeleted": earlier_deleted}
    if deleted:
        attempts.record(name, {**entry, "pendingDelete": deleted})  # before the commit: a kill after it is seen
        _retry_on_conflict(
            lambda: spark.sql(f"DELETE FROM {name} WHERE {condition}"), order.max_commit_attempts, report
        )
    attempts.record(name, {**entry, "rowsDeleted": earlier_deleted + deleted})
    report["rowsDeleted"] = contracts.count(earlier_deleted + deleted)

    rewrite = _retry_on_conflict(
        # Only files with deletes (their masked rows are still in them); no size-based compaction of the rest.
        lambda: spark.sql(
            f"CALL {catalog}.system.rewrite_data_files(table => '{short}', options => map("
            "'delete-file-threshold', '1', 'remove-dangling-deletes', 'true', "
            "'min-file-size-bytes', '0', 'max-file-size-bytes', '1099511627776'))"
        ).collect(),
        order.max_commit_attempts,
        report,
    )[0]
    report["dataFilesRewritten"] = contracts.count(rewrite["rewritten_data_files_count"])
    report["deleteFilesRemoved"] = (
        contracts.count(rewrite["removed_delete_files_count"]) if "removed_delete_files_count" in rewrite else None
    )
    dangling = spark.sql(
        f"CALL {catalog}.system.rewrite_position_delete_files(table => '{short}', "
        "options => map('rewrite-all', 'true'))"
    ).collect()
    report["positionDeleteFilesRewritten"] = contracts.count(
        dangling[0]["rewritten_delete_files_count"] if dangling else 0
    )

    refs = []
    for ref in spark.sql(f"SELECT name, type, snapshot_id FROM {name}.refs WHERE name <> 'main'").collect():
        kind = str(ref["type"]).upper()
        spark.sql(f"ALTER TABLE {name} DROP {kind} `{ref['name']}`")
        refs.append(
            {
                "name": ref["name"],
                "type": kind.lower(),
                "snapshotId": contracts.int64(int(ref["snapshot_id"])),
                "action": "dropped",
            }
        )
    report["refs"] = refs
    report["manifestsRewritten"] = contracts.count(
        _retry_on_conflict(
            lambda: _rewrite_manifests_with_deleted_entries(spark, catalog, name, short),
            order.max_commit_attempts,
            report,
        )
    )

    # The cutoff before the fold: every snapshot older than it was committed before the fold read the markers, so
    # none expires with a marker that was not folded (a stream batch committed after the fold is newer).
    cutoff = utc_now_literal()
    report["streamMarkersFolded"] = {
        query: contracts.count(batch) for query, batch in fold_markers(spark, name).items()
    }
    expired = (
        spark.sql(
            f"CALL {catalog}.system.expire_snapshots(table => '{short}', older_than => {cutoff}, retain_last => 1)"
        )
        .collect()[0]
        .asDict()
    )
    report["filesDeletedByExpiry"] = {key: contracts.count(value) for key, value in expired.items()}

    # Beside a stream the session's cached table falls behind and names metadata files already deleted: each of
    # these reads the table afresh, and again when a concurrent commit deleted what it read (stale_reads).
    orphans = refreshed(
        spark, name, lambda: _remove_orphans(spark, name, started_ms - order.orphan_grace_seconds * 1000)
    )
    report["orphanFilesDeleted"] = contracts.count(_retry_on_conflict(orphans, order.max_commit_attempts, report, True))
    previous = refreshed(spark, name, lambda: _remove_previous_metadata(spark, name))
    report["previousMetadataFilesDeleted"] = contracts.count(
        _retry_on_conflict(previous, order.max_commit_attempts, report, True)
    )
    report["snapshotAfter"] = contracts.int64(_current_snapshot(spark, name))
    report["verification"] = verify_table(spark, name, condition, pseudonyms, other_rows_before)
    report["finishedAt"] = datetime.now(UTC).isoformat()
    return report


def _rewrite_manifests_with_deleted_entries(spark: Any, catalog: str, name: str, short: str) -> int:
    """Rewrites the current snapshot's manifests that still list removed files; returns how many were replaced.

    A commit that removes a data or delete file keeps it in its manifests as a DELETED entry with all its column
    statistics: when a subject's pseudonym was a file's lower or upper bound, its 16-character prefix survives the
    DELETE, in the one snapshot that expiry keeps. Iceberg's rewrite_manifests writes live entries only; afterwards
    expiry removes the DELETE's manifests with its snapshot. The procedure leaves a partition spec with a single
    manifest alone, so an empty manifest is committed beside such a one first (RewriteManifests.addManifest)."""
    rows = spark.sql(
        f"SELECT content, partition_spec_id AS spec, "
        f"deleted_data_files_count + deleted_delete_files_count AS deleted FROM {name}.manifests"
    ).collect()
    with_deleted = {(int(r["content"]), int(r["spec"])) for r in rows if int(r["deleted"]) > 0}
    if not with_deleted:
        return 0
    for content, spec in sorted(with_deleted):
        if sum(1 for r in rows if (int(r["content"]), int(r["spec"])) == (content, spec)) == 1:
            _commit_empty_manifest(spark, name, content, spec)
    replaced = 0
    for spec in sorted({spec for _, spec in with_deleted}):
        result = spark.sql(f"CALL {catalog}.system.rewrite_manifests(table => '{short}', spec_id => {spec})").collect()
        replaced += int(result[0]["rewritten_manifests_count"])
    return replaced


def _commit_empty_manifest(spark: Any, name: str, content: int, spec_id: int) -> None:
    """Adds a manifest without entries (content 0: data, 1: deletes) of one partition spec to the table."""
    import uuid

    jvm = spark._jvm
    table = jvm.org.apache.iceberg.spark.Spark3Util.loadIcebergTable(spark._jsparkSession, name)
    operations = table.operations()
    version = operations.current().formatVersion()
    spec = table.specs().get(spec_id)
    output = table.io().newOutputFile(operations.metadataFileLocation(f"{uuid.uuid4()}-m-empty.avro"))
    files = jvm.org.apache.iceberg.ManifestFiles
    writer = (
        files.write(version, spec, output, None)
        if content == 0
        else files.writeDeleteManifest(version, spec, output, None)
    )
    writer.close()
    table.rewriteManifests().addManifest(writer.toManifestFile()).commit()


def verify_table(
    spark: Any, name: str, condition: str | None, pseudonyms: list[str], other_rows_before: int
) -> dict[str, Any]:
    described = {row["col_name"]: row["data_type"] for row in spark.sql(f"DESCRIBE TABLE EXTENDED {name}").collect()}
    scan = scan_table_files(str(described["Location"]), pseudonyms)
    snapshots = [int(row[0]) for row in spark.sql(f"SELECT snapshot_id FROM {name}.snapshots").collect()]
    time_travel_rows = 0
    if condition:
        for snapshot in snapshots:
            time_travel_rows += spark.sql(
                f"SELECT count(*) FROM {name} VERSION AS OF {snapshot} WHERE {condition}"
            ).collect()[0][0]
    others = f"NOT ({condition})" if condition else "true"
    other_rows_after = spark.sql(f"SELECT count(*) FROM {name} WHERE {others}").collect()[0][0]
    passed = not scan.matches and time_travel_rows == 0 and other_rows_after >= other_rows_before
    return {
        "method": (
            "every file under the table location searched raw and decoded (Parquet values, Avro records incl. "
            "16-character bound prefixes, JSON text); time travel to every remaining snapshot; count of the other rows"
        ),
        "filesScanned": contracts.count(scan.files),
        "bytesScanned": contracts.count(scan.bytes),
        "filesWithMatches": sorted(scan.matches),
        "snapshotsChecked": contracts.count(len(snapshots)),
        "timeTravelRows": contracts.count(time_travel_rows),
        "otherRowsBefore": contracts.count(other_rows_before),
        "otherRowsAfter": contracts.count(other_rows_after),
        "result": "passed" if passed else "failed",
    }


def run(order: ErasureOrder, progress: str | None = None, attempts_location: str | None = None) -> dict[str, Any]:
    """Erases and verifies every table; `attempts_location` keeps what each attempt did, for a re-run of the run."""
    from ..jobs.session import build_session

    attempts = RunAttempts.load(attempts_location, order.run_id)

    started = datetime.now(UTC)
    started_ms = int(started.timestamp() * 1000)
    spark = build_session(order.catalog, app_name=f"erasure-{order.run_id}", master=order.master)
    spark.sparkContext.setLogLevel("ERROR")
    try:
        tables: list[dict[str, Any]] = []
        states = {table.name: "pending" for table in order.tables}
        for table in order.tables:
            states[table.name] = "running"
            _report_progress(progress, states)
            tables.append(erase_table(spark, order, table, started_ms, attempts))
            states[table.name] = "verified" if tables[-1]["verification"]["result"] == "passed" else "failed"
        _report_progress(progress, states)
    finally:
        spark.stop()
    verified = all(t["verification"]["result"] == "passed" for t in tables)
    certificate = {
        # 2: 64-bit integers as decimal strings (contracts/erasure-certificate.schema.json)
        "certificateVersion": 2,
        "runId": order.run_id,
        "requestIds": list(order.request_ids),
        "subjects": len(order.subjects),
        "pseudonymsSearched": sum(len(s.pseudonyms) for s in order.subjects),
        "startedAt": started.isoformat(),
        "finishedAt": datetime.now(UTC).isoformat(),
        "tables": tables,
        "result": "verified" if verified else "failed",
    }
    # A certificate the service would refuse is a bug here: fail loudly rather than write it.
    contracts.validate("erasure-certificate", certificate)
    return certificate


def _report_progress(path: str | None, states: dict[str, str]) -> None:
    """Per-table states for the runner to show while the job runs (names of tables only)."""
    if path:
        progress = [{"table": name, "status": state} for name, state in states.items()]
        contracts.validate("erasure-progress", progress)
        write_text_whole(path, json.dumps(progress))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Erase data subjects from registered Iceberg tables, history included, and certify it"
    )
    parser.add_argument("--order", required=True, help="the erasure order (JSON)")
    parser.add_argument("--certificate", required=True, help="where to write the certificate (JSON)")
    parser.add_argument("--progress", help="where to keep per-table progress (JSON) while the job runs")
    parser.add_argument("--master", help="Spark master, e.g. local[2] (spark-submit sets it otherwise)")
    args = parser.parse_args(argv)
    try:
        order = parse_order(read_json(args.order))
        if args.master:
            order = replace(order, master=args.master)
    except JobConfigError as error:
        print(f"order: {error}", file=sys.stderr)
        return 2
    try:
        certificate = run(order, args.progress, RunAttempts.beside(args.certificate))
    except SessionConfigError as error:
        print(f"order: {error}", file=sys.stderr)
        return 2
    # Written whole or not at all: a runner that finds a certificate takes it as the outcome.
    write_text_whole(args.certificate, json.dumps(certificate, indent=2))
    print(json.dumps({"runId": order.run_id, "result": certificate["result"], "certificate": args.certificate}))
    return 0 if certificate["result"] == "verified" else 1


if __name__ == "__main__":
    sys.exit(main())
