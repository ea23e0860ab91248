"""The re-keying job: rewrite the pseudonymized columns of registered Iceberg tables from older key versions to the
active one, through the API's `/v1/rewrap`, so that joins between data written before and after a key rotation
keep working; then remove the old versions from the tables' history and record which versions remain.

    rekey-tables --registry registry.json --api api.json [--report report.json] [--table NAME ...] [--master local[2]]
                 [--legacy-aws-sample]
    spark-submit spark-udfs/entry/rekey.py --registry … --api …        (spark-submit's entry)

The registry is the service's table registry (examples/erasure-registry.json: the catalog and, per table, column ->
context), with an optional `keyInventory` (a path relative to the registry file, or an s3:// URI; default
`key-inventory.json` beside the registry). The API file is the batch job's `api` section (`url`, `apiKeyFile` or
`apiKeyEnv` or `apiKeySecretId`, `batchSize`, `concurrency`, ...); the key needs the `rewrap` role only: the
identifiers never leave the service.

Per table, in this order:
 1. Count, per column, the rows and distinct values of each key version: the `<mode><version>.` prefix of AES-SIV
    pseudonyms (`s` deterministic, `r` randomized, `h` keyed hash). The active version comes from the API (the
    `keyVersion` of a rewrap answer), so the job needs no keyring access.
 2. One `UPDATE … SET col = rewrap(col), … WHERE <any column holds an older s/r version>`, copy-on-write: ONE atomic
    Iceberg commit per table. An Arrow UDF rewraps each batch's distinct older pseudonyms once (as the pseudonymize
    path does) and leaves every other value as it is.
    Why UPDATE rather than MERGE INTO or an overwrite: MERGE needs a mapping table joined per column (several
    columns of one table mean several MERGEs, so several commits, or a fan-in of joins); an overwrite by filter
    replaces files appended by the streaming job after the read (their rows would be lost). UPDATE rewrites only
    the data files holding matching rows, in one commit, and Iceberg validates it against concurrent commits.
    The statement runs with `write.update.mode=copy-on-write` and `write.update.isolation-level=snapshot`, set for
    it and restored exactly as they were (a value, or absent) afterwards, on failure too, and by the next run if
    this one is killed in between (`iceberg_ops.table_properties_during`; why snapshot isolation is safe: see
    UPDATE_PROPERTIES). A streaming append then does not conflict; a concurrent delete or compaction of a file
    the UPDATE rewrites does, and is retried (`iceberg_ops.retry_on_conflict`, the erasure job's pattern),
    recomputing the UDF over the new state. Killed before the commit, the table is entirely as before; after, it
    is entirely rewritten: a re-run finds no older version and only finishes steps 3-4 (idempotent).
    One commit per table, not per partition (README "Key rotation"): readers never see a table half re-keyed and
    a restart needs no plan; the limit is the one UPDATE itself, which rewrites every file holding an older
    version in one Spark job, started over by a failure, a kill or a conflicting delete or compaction.
 3. Fold the streaming job's batch markers into table properties (`jobs.markers.fold_markers`), expire every
    snapshot older than the commit (Iceberg deletes the old data files, which hold the old pseudonyms), remove
    orphan files older than the start minus `--orphan-grace-seconds` (a killed attempt's uncommitted files).
    Tags and branches are not dropped (unlike erasure, nothing obliges it): the snapshots they pin keep their
    versions, and the inventory says so.
 4. Count the versions again over every remaining snapshot and record them per column in the key inventory
    (contracts/key-inventory.schema.json; read, changed for this table, validated, written whole).

What is left as it is, and reported:
 - an erased subject: rewrap answers null for it; its rows keep the old pseudonym (never a new one), the column
   keeps that version in the inventory until the erasure job removes the rows (`rowsKeptErased`, and
   `erasedValuesKept`: rows and distinct values the UPDATE read and left);
 - rows of an older version appended while the UPDATE ran (a writer still within its keyring refresh after the
   rotation): not rewritten, counted apart (`rowsAppendedMeanwhileStale`), their version kept in the inventory; a
   later run rewrites them;
 - FF1 (`fpe`) columns: their pseudonyms keep the identifier's alphabet and length and carry no key version, so
   the job cannot tell what to rewrap nor whether a re-run would rewrap twice. Such a column is reported as
   `unversioned` and left out of the inventory; re-key it by pseudonymizing the source again;
 - keyed hashes (`h`): irreversible, they cannot be rewrapped; their versions stay in the inventory.
A pseudonym the API refuses (tampered, another context's, a destroyed version) fails the table: nothing is
committed, and the error names the reason and count, never a value.

The report (stdout, and `--report` as a file) holds per table: rows rewritten, distinct values rewritten, versions
before and after per column, snapshots expired, commit conflicts retried, seconds (whole and per step: count,
rewrite, expire, orphans, inventory). Progress lines go to stderr. The counts are exact: they come from the data
at the UPDATE's commit and at its parent (no Spark accumulators, which count a retried task or statement twice).
Exit 0 when every table was re-keyed (the report says what remains and why), 1 when a table failed, 2 for a
bad configuration.

With `--legacy-aws-sample`, the AWS sample's pseudonyms in the selected tables' columns are stale too (tables the
sample wrote, once its secret is imported as a legacy version: `npm run keys -- import-aws-sample`): a value in its
format (standard base64 with padding of a 12-byte nonce, the AES-GCM-SIV ciphertext and its 16-byte tag, so at least
29 bytes; never one of our `<mode><version>.` tokens) goes through `/v1/rewrap` in the same UPDATE, and the report
counts it (`legacyRewrapped`). A column that still holds sample values afterwards (an erased subject's, or in a
snapshot a tag pins) is left out of the key inventory, so `keys destroy` of the legacy version stays refused. The
column's context must be one the legacy version is bound to; a value the API refuses (an FF1 value that happens to
look like base64, another context's) fails the table with nothing committed: leave such a table out with `--table`.

Two jobs may run at once on one inventory (other tables): each table's entry is written under a lock (locally) or
a conditional put (S3), so neither loses the other's (`record_inventory`).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

# Module level: Spark reads the UDF's type hints (pa.Array) to choose its Arrow evaluation, by this module's names.
import pyarrow as pa
import pyarrow.compute as pc

from .. import contracts
from ..client import ClientConfig, PseudonymizationError, PseudonymsRefused, shared_client
from ..errors import ValueFreeError
from ..iceberg import is_s3_uri, local_path, read_text, split_s3_uri, write_text_whole
from ..jobs.config import (
    JobConfigError,
    RegisteredTable,
    Section,
    check_api_key,
    check_registry,
    parse_api,
    parse_catalog,
    parse_registered_tables,
    read_json,
)
from ..jobs.session import CatalogConfig, SessionConfigError

#: `<mode><version>.`: the prefix every AES-SIV pseudonym and keyed hash starts with (api/engine/pseudonymFormat.ts).
VERSIONED = re.compile(r"^([srh])([1-9][0-9]{0,9})[.]")
#: The same rule in Spark SQL (group 1: mode, group 2: version). Only characters that need no escaping in a literal.
_SQL_VERSIONED = "^([srh])([1-9][0-9]{0,9})[.]"
#: Modes rewrap can turn into the active version (a keyed hash cannot be reversed).
REWRAPPABLE = frozenset("sr")
#: The AWS sample's pseudonym: standard base64 with padding (api/engine/legacyAwsSample.ts).
LEGACY_AWS_SAMPLE = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
_SQL_LEGACY_AWS_SAMPLE = "^[A-Za-z0-9+/]+={0,2}$"
#: 12-byte nonce, at least one byte of ciphertext, 16-byte tag.
LEGACY_MIN_BYTES = 12 + 1 + 16
DEFAULT_INVENTORY = "key-inventory.json"
#: The UPDATE's table properties, set for that statement only and restored afterwards exactly as they were.
#: Copy-on-write: the rewritten files replace the old ones, and expiry deletes those (merge-on-read would keep the
#: old pseudonyms in the old files under position deletes).
#: Snapshot isolation: under serializable (Iceberg's default) any file appended while the UPDATE runs conflicts
#: (its condition, a regexp over the columns, gives Iceberg no filter to rule a file out), so a long UPDATE under
#: a streaming append every few seconds would fail on every attempt. Snapshot isolation still refuses a commit
#: whose rewritten files a concurrent commit deleted or added deletes to (an erasure, a compaction: retried, so an
#: erased row is never brought back) and drops only the check for new files. Why that is safe here: the rows
#: appended meanwhile are left exactly as written, neither lost (the commit replaces only the files the UPDATE
#: read) nor rewritten (they are in no file it read; and rewrap of an active-version value is never asked for).
#: Writers pseudonymize under the active key, so those rows already carry the new version's pseudonyms and join
#: with the rewritten ones. A writer still on the old key (a server within its keyring refresh after the rotation)
#: appends old-version rows the commit does not touch: the count after the commit finds them, the inventory keeps
#: their version (so `keys destroy` refuses it) and a later run rewrites them.
UPDATE_PROPERTIES = {"write.update.mode": "copy-on-write", "write.update.isolation-level": "snapshot"}
#: A session setting Iceberg copies into the summary of the snapshots the session commits: the UPDATE's commit
#: carries the run's id, so the job finds its own commit among concurrent ones.
RUN_ID_PROPERTY = "spark.sql.iceberg.snapshot-property.spark-udfs.rekey-run"
RUN_ID_SUMMARY = "spark-udfs.rekey-run"


class RekeyError(ValueFreeError):
    """A table cannot be re-keyed as configured; names tables, columns and counts, never a value."""


@dataclass(frozen=True)
class RekeySettings:
    catalog: CatalogConfig
    tables: tuple[RegisteredTable, ...]
    inventory: str
    api: ClientConfig
    master: str | None = None
    max_commit_attempts: int = 5
    orphan_grace_seconds: int = 3600
    #: rewrap the AWS sample's pseudonyms too (`--legacy-aws-sample`)
    legacy_aws_sample: bool = False


def inventory_location(registry: str, configured: str | None) -> str:
    """Where the key inventory lives: `configured` (relative to the registry's folder unless absolute or s3://),
    or key-inventory.json beside the registry."""
    folder = registry.rsplit("/", 1)[0] if "/" in registry else "."
    if configured is None:
        return f"{folder}/{DEFAULT_INVENTORY}"
    if is_s3_uri(configured) or os.path.isabs(configured):
        return configured
    return f"{folder}/{configured}"


def parse_registry(raw: Mapping[str, object], registry: str) -> tuple[CatalogConfig, list[RegisteredTable], str]:
    """The registry's catalog, tables and inventory location; errors name the key at fault."""
    section = Section(raw)
    catalog = parse_catalog(section.section("catalog").values)
    if catalog.type == "jdbc" and not is_s3_uri(registry):
        # The service resolves a local catalog's paths from its working directory; so does this job.
        catalog = replace(catalog, uri=os.path.abspath(catalog.uri), warehouse=os.path.abspath(catalog.warehouse))
    tables = list(parse_registered_tables(section, catalog))
    check_registry(raw)
    return catalog, tables, inventory_location(registry, section.optional_text("keyInventory"))


# ---------------------------------------------------------------------------------------------------------------
# What a column holds


@dataclass
class ColumnVersions:
    """Rows per (mode, version) of one column, the rows without a version prefix (the AWS sample's pseudonyms
    apart when asked for), and the distinct values to rewrap. Counts only."""

    rows: dict[tuple[str, int], int] = field(default_factory=dict)
    unversioned_rows: int = 0
    #: rows in the AWS sample's format (counted only with `legacy`: they are then stale)
    legacy_rows: int = 0
    #: rows in the AWS sample's format, with or without `legacy` (they keep the column out of the inventory)
    legacy_present: int = 0
    stale_distinct: int = 0

    def versions(self) -> list[int]:
        return sorted({version for _, version in self.rows})

    def stale_rows(self, active: int) -> int:
        older = sum(n for (mode, version), n in self.rows.items() if mode in REWRAPPABLE and version != active)
        return older + self.legacy_rows


def is_legacy_aws_sample(value: str) -> bool:
    """True for a value in the AWS sample's pseudonym format: strict base64 of at least 29 bytes, none of ours."""
    if VERSIONED.match(value) or not LEGACY_AWS_SAMPLE.match(value) or len(value) % 4:
        return False
    try:
        return len(base64.b64decode(value, validate=True)) >= LEGACY_MIN_BYTES
    except (binascii.Error, ValueError):
        return False


def _legacy_condition(column: str) -> str:
    """SQL true for a value in the AWS sample's format (the rule of `is_legacy_aws_sample`)."""
    return (
        f"(`{column}` RLIKE '{_SQL_LEGACY_AWS_SAMPLE}' AND length(`{column}`) % 4 = 0 "
        f"AND octet_length(unbase64(`{column}`)) >= {LEGACY_MIN_BYTES})"
    )


def _stale_condition(column: str, active: int, legacy: bool = False) -> str:
    """SQL true for a row whose column holds an s/r pseudonym of another version than `active` (or, with `legacy`,
    an AWS sample pseudonym)."""
    mode = f"regexp_extract(`{column}`, '{_SQL_VERSIONED}', 1)"
    version = f"regexp_extract(`{column}`, '{_SQL_VERSIONED}', 2)"
    older = f"({mode} IN ('s', 'r') AND {version} <> '{int(active)}')"
    return f"({older} OR {_legacy_condition(column)})" if legacy else older


def column_versions(
    spark: Any,
    name: str,
    column: str,
    snapshot: int | None = None,
    active: int | None = None,
    legacy: bool = False,
) -> ColumnVersions:
    """The versions of one column, in the current state or at `snapshot`; with `active`, also the distinct values
    that are not of that version (what a rewrite sends). The AWS sample's pseudonyms are always counted apart
    (`legacy_rows`: a column holding any stays out of the key inventory, flag or not, or `keys destroy` could
    shred the legacy version under them); without `legacy` they also count as unversioned (not rewritten)."""
    source = f"{name} VERSION AS OF {int(snapshot)}" if snapshot is not None else name
    found = ColumnVersions()
    legacy_expression = _legacy_condition(column)
    rows = spark.sql(
        f"SELECT regexp_extract(`{column}`, '{_SQL_VERSIONED}', 1) AS mode, "
        f"regexp_extract(`{column}`, '{_SQL_VERSIONED}', 2) AS version, "
        f"coalesce({legacy_expression}, false) AS legacy, count(*) AS n "
        f"FROM {source} WHERE `{column}` IS NOT NULL GROUP BY 1, 2, 3"
    ).collect()
    for row in rows:
        if row["mode"]:
            found.rows[(str(row["mode"]), int(row["version"]))] = int(row["n"])
        elif row["legacy"]:
            found.legacy_present += int(row["n"])
            if legacy:
                found.legacy_rows += int(row["n"])
            else:
                found.unversioned_rows += int(row["n"])
        else:
            found.unversioned_rows += int(row["n"])
    if active is not None and found.stale_rows(active):
        found.stale_distinct = int(
            spark.sql(
                f"SELECT count(DISTINCT `{column}`) FROM {source} WHERE {_stale_condition(column, active, legacy)}"
            ).collect()[0][0]
        )
    return found


def _sample_stale(spark: Any, name: str, column: str, active_guess: int, limit: int = 5) -> list[str]:
    rows = spark.sql(
        f"SELECT DISTINCT `{column}` FROM {name} WHERE {_stale_condition(column, active_guess)} LIMIT {int(limit)}"
    ).collect()
    return [str(row[0]) for row in rows]


def _sample_legacy(spark: Any, name: str, column: str, limit: int = 5) -> list[str]:
    rows = spark.sql(
        f"SELECT DISTINCT `{column}` FROM {name} WHERE {_legacy_condition(column)} LIMIT {int(limit)}"
    ).collect()
    return [str(row[0]) for row in rows]


def active_version(config: ClientConfig, context: str, samples: Sequence[str]) -> int:
    """The API's active key version: the `keyVersion` of a rewrap answer for one of `samples` (one that rewraps)."""
    client = shared_client(config)
    refused: set[str] = set()
    for sample in samples:
        try:
            return max(client.rewrap(context, [sample]).key_versions)
        except PseudonymsRefused as error:
            refused |= set(error.refused.values())
    raise RekeyError(
        f"none of {len(samples)} sampled pseudonym(s) of context {context} could be rewrapped "
        f"({', '.join(sorted(refused))}): cannot learn the active key version"
    )


# ---------------------------------------------------------------------------------------------------------------
# The rewrite


def rewrap_udf(config: ClientConfig, context: str, active: int, legacy: bool = False) -> Any:
    """An Arrow UDF (string -> string) for one column: per Arrow batch, the distinct s/r pseudonyms of another
    version than `active` (and, with `legacy`, the AWS sample's pseudonyms) go to /v1/rewrap once, as an Arrow
    array (no Python string per value); every other value, and an erased subject's (null answer), stays as it is.
    It counts nothing: Spark applies a transformation's accumulator updates again when a task or the statement
    runs again (a task retry, a commit conflict retried), so the report's counts come from the committed data
    instead."""
    from pyspark.sql.functions import arrow_udf  # type: ignore[attr-defined]  # (pyspark 4.1, not in its hints)

    def rekey(column: pa.Array) -> pa.Array:
        unique = pc.unique(column.drop_null())
        mask = stale_mask(unique, active, legacy)
        if not pc.any(mask).as_py():
            return column
        old = unique.filter(mask)
        answers, erased = shared_client(config).rewrap_array(context, old)
        if answers.null_count != len(erased):
            raise RekeyError(f"/v1/rewrap answered {answers.null_count} null(s) for {len(erased)} erased value(s)")
        # A null answer is an erased subject: the old pseudonym stays (the erasure job removes the row), never a
        # null and never a new pseudonym.
        kept_or_new = pc.coalesce(answers.cast(unique.type), old)
        replaced = pc.replace_with_mask(unique, mask, kept_or_new)
        # index_in keeps nulls null.
        return replaced.take(pc.index_in(column, value_set=unique))

    return arrow_udf(rekey, "string")


#: VERSIONED with named groups, for pyarrow's extract_regex (RE2).
_ARROW_VERSIONED = r"^(?P<mode>[srh])(?P<version>[1-9][0-9]{0,9})[.]"


def stale_mask(values: pa.Array, active: int, legacy: bool = False) -> pa.Array:
    """Per value of `values` (the distinct values of a batch: the check runs once per distinct value), true for an
    s/r pseudonym of another version than `active`, or with `legacy` an AWS sample pseudonym; false for a null.
    The rule of `_stale_condition`, on Arrow arrays."""
    parts = pc.extract_regex(values, _ARROW_VERSIONED)  # null where the value has no version prefix
    mode, version = pc.struct_field(parts, "mode"), pc.struct_field(parts, "version")
    # No leading zero in a version (the pattern), so comparing the digits as text is exact.
    older = pc.and_(pc.is_in(mode, pa.array(sorted(REWRAPPABLE))), pc.not_equal(version, str(int(active))))
    mask = pc.fill_null(older, False)
    if legacy:
        # The values in base64's alphabet are checked exactly (padding, decoded length), one distinct value each.
        candidates = pc.fill_null(
            pc.and_(pc.is_null(parts), pc.match_substring_regex(values, LEGACY_AWS_SAMPLE.pattern)), False
        )
        if pc.any(candidates).as_py():
            positions = pc.indices_nonzero(candidates)
            sample = pa.array([is_legacy_aws_sample(str(v)) for v in values.take(positions).to_pylist()], pa.bool_())
            mask = pc.replace_with_mask(mask, candidates, sample)  # false there so far: no version prefix
    return mask


def _progress(message: str) -> None:
    print(f"rekey: {message}", file=sys.stderr, flush=True)


def _string_columns(spark: Any, table: RegisteredTable) -> None:
    from pyspark.sql.types import StringType

    fields = {f.name: f.dataType for f in spark.table(table.name).schema.fields}
    for column in table.columns:
        if column not in fields:
            raise RekeyError(f"{table.name} has no column {column}")
        if not isinstance(fields[column], StringType):
            raise RekeyError(f"{table.name}.{column} is not a string column")


def _older_snapshot_versions(
    spark: Any, name: str, columns: Sequence[str], legacy: bool = False
) -> tuple[dict[str, set[int]], set[str]]:
    """The versions each column holds in the remaining snapshots other than the current one (those a tag or a
    branch pins, or a stream's commits after the cut-off), and the columns holding AWS sample pseudonyms there
    (with the flag or without it)."""
    from ..iceberg_ops import current_snapshot

    snapshots = {int(row[0]) for row in spark.sql(f"SELECT snapshot_id FROM {name}.snapshots").collect()}
    current = current_snapshot(spark, name)
    found: dict[str, set[int]] = {column: set() for column in columns}
    with_legacy: set[str] = set()
    for snapshot in sorted(snapshots - {current}):
        for column in columns:
            versions = column_versions(spark, name, column, snapshot, legacy=legacy)
            found[column] |= set(versions.versions())
            if versions.legacy_present:
                with_legacy.add(column)
    return found, with_legacy


def _commit_of_run(spark: Any, name: str, run_id: str) -> tuple[int, int | None] | None:
    """(snapshot id, parent id) of the commit carrying `run_id` (None when the statement committed nothing)."""
    rows = spark.sql(
        f"SELECT snapshot_id, parent_id FROM {name}.snapshots WHERE summary['{RUN_ID_SUMMARY}'] = '{run_id}'"
    ).collect()
    if not rows:
        return None
    parent = rows[0]["parent_id"]
    return int(rows[0]["snapshot_id"]), int(parent) if parent is not None else None


def _stale_left_by_commit(
    spark: Any, name: str, column: str, commit: tuple[int, int | None], stale: str
) -> tuple[int, int, int]:
    """The stale rows at the UPDATE's commit, told apart: (rows the UPDATE read and left, an erased subject's; their
    distinct values; rows appended while it ran, by a writer still on the old key). Copy-on-write rewrites every
    file holding a row it matched, so the first are in files the commit added; the second in files that were
    already in its parent (the commit left them alone) and hold stale rows there too. Counted by `_file`, exact."""
    snapshot, parent = commit
    rows = spark.sql(
        f"SELECT p._file IS NULL AS rewritten, count(*) AS n, count(DISTINCT t.`{column}`) AS d "
        f"FROM (SELECT `{column}`, _file FROM {name} VERSION AS OF {int(snapshot)} WHERE {stale}) t "
        + (
            f"LEFT JOIN (SELECT DISTINCT _file FROM {name} VERSION AS OF {int(parent)} WHERE {stale}) p "
            "ON t._file = p._file "
            if parent is not None
            else "LEFT JOIN (SELECT CAST(NULL AS string) AS _file) p ON false "
        )
        + "GROUP BY 1"
    ).collect()
    kept = next(((int(r["n"]), int(r["d"])) for r in rows if r["rewritten"]), (0, 0))
    appended = next((int(r["n"]) for r in rows if not r["rewritten"]), 0)
    return kept[0], kept[1], appended


def rekey_table(spark: Any, settings: RekeySettings, table: RegisteredTable, started_ms: int) -> dict[str, Any]:
    from ..iceberg_ops import (
        current_snapshot,
        remove_orphans,
        restore_table_properties,
        retry_on_conflict,
        table_properties_during,
        utc_now_literal,
    )
    from ..jobs.markers import fold_markers

    started = time.monotonic()
    name = table.name
    short = name.split(".", 1)[1]
    _string_columns(spark, table)
    # A run killed inside the UPDATE left the statement's properties changed (and recorded): put them back first.
    restore_table_properties(spark, name)
    snapshot_before = current_snapshot(spark, name)
    report: dict[str, Any] = {
        "table": name,
        "snapshotBefore": contracts.int64(snapshot_before),
        "commitConflictsRetried": 0,
    }
    steps: dict[str, float] = {}
    step_started = time.monotonic()

    def step(label: str) -> None:
        nonlocal step_started
        steps[label] = round(time.monotonic() - step_started, 3)
        step_started = time.monotonic()

    _progress(f"{name}: counting key versions")
    legacy = settings.legacy_aws_sample
    # Counted at the snapshot just read, so that these counts and the commit's parent can be compared exactly.
    before = {column: column_versions(spark, name, column, snapshot_before, legacy=legacy) for column in table.columns}
    unversioned = [c for c, v in before.items() if v.unversioned_rows and not v.rows and not v.legacy_rows]
    versioned = [c for c in table.columns if c not in unversioned]

    # The active version, from the API: rewrap a few pseudonyms of the column with the highest version found (or,
    # in a table only the AWS sample wrote, a few of its pseudonyms).
    highest = max((v for c in versioned for (mode, v) in before[c].rows if mode in REWRAPPABLE), default=None)
    active: int | None = None
    samples: list[str] = []
    if highest is not None:
        column = next(c for c in versioned if any(m in REWRAPPABLE and v == highest for m, v in before[c].rows))
        samples = _sample_stale(spark, name, column, highest + 1)
    elif any(before[c].legacy_rows for c in versioned):
        column = next(c for c in versioned if before[c].legacy_rows)
        samples = _sample_legacy(spark, name, column)
    if samples:
        active = active_version(settings.api, table.columns[column], samples)
        before = {
            c: column_versions(spark, name, c, snapshot_before, active=active, legacy=legacy) for c in versioned
        } | {c: before[c] for c in unversioned}
    report["activeVersion"] = active

    step("count")
    stale = [c for c in versioned if active is not None and before[c].stale_rows(active)]
    # The UPDATE's own commit (found by the run id it carries in its snapshot summary) and its parent: counted at
    # both, they give exactly what the commit changed, whatever ran concurrently and however often it was retried.
    at_parent: dict[str, ColumnVersions] = {}
    at_commit: dict[str, ColumnVersions] = {}
    #: column -> (rows an erased subject kept, their distinct values, rows appended meanwhile still stale)
    left_by_commit: dict[str, tuple[int, int, int]] = {}
    commit: tuple[int, int | None] | None = None
    if stale and active is not None:
        assignments = []
        for column in stale:
            function = f"rekey_{column}"
            spark.udf.register(function, rewrap_udf(settings.api, table.columns[column], active, legacy))
            assignments.append(f"`{column}` = {function}(`{column}`)")
        condition = " OR ".join(_stale_condition(column, active, legacy) for column in stale)
        rows = sum(before[c].stale_rows(active) for c in stale)
        _progress(f"{name}: rewriting {rows} value(s) in {len(stale)} column(s) to key version {active}")
        from ..jobs.progress import JobProgress

        run_id = uuid.uuid4().hex
        with table_properties_during(spark, name, UPDATE_PROPERTIES), JobProgress(f"rekey {name}"):
            spark.conf.set(RUN_ID_PROPERTY, run_id)
            try:
                retry_on_conflict(
                    lambda: spark.sql(f"UPDATE {name} SET {', '.join(assignments)} WHERE {condition}"),
                    settings.max_commit_attempts,
                    report,
                )
            finally:
                spark.conf.unset(RUN_ID_PROPERTY)
        _progress(f"{name}: committed")
        commit = _commit_of_run(spark, name, run_id)
    if commit is not None and active is not None:
        rewritten_snapshot, parent = commit
        at_commit = {
            c: column_versions(spark, name, c, rewritten_snapshot, active=active, legacy=legacy) for c in versioned
        }
        at_parent = (
            {c: before[c] for c in versioned}
            if parent == snapshot_before
            else {c: column_versions(spark, name, c, parent, active=active, legacy=legacy) for c in versioned}
        )
        # Told apart now: expiry removes the parent, by which they are.
        left_by_commit = {
            c: _stale_left_by_commit(spark, name, c, commit, _stale_condition(c, active, legacy))
            for c in versioned
            if at_commit[c].stale_rows(active)
        }
        report["snapshotRewritten"] = contracts.int64(rewritten_snapshot)
    else:
        report["snapshotRewritten"] = contracts.int64(current_snapshot(spark, name))
    step("rewrite")

    _progress(f"{name}: expiring older snapshots")
    # The cutoff before the fold: a stream batch committed after the fold is newer, so none expires unfolded.
    cutoff = utc_now_literal()
    report["streamMarkersFolded"] = {
        query: contracts.count(batch) for query, batch in fold_markers(spark, name).items()
    }
    snapshots_before_expiry = int(spark.sql(f"SELECT count(*) FROM {name}.snapshots").collect()[0][0])
    expired = (
        spark.sql(
            f"CALL {settings.catalog.name}.system.expire_snapshots(table => '{short}', "
            f"older_than => {cutoff}, retain_last => 1)"
        )
        .collect()[0]
        .asDict()
    )
    remaining = int(spark.sql(f"SELECT count(*) FROM {name}.snapshots").collect()[0][0])
    report["snapshotsExpired"] = contracts.count(snapshots_before_expiry - remaining)
    report["filesDeletedByExpiry"] = {key: contracts.count(value) for key, value in expired.items()}
    step("expire")
    report["orphanFilesDeleted"] = contracts.count(
        remove_orphans(spark, name, started_ms - settings.orphan_grace_seconds * 1000)
    )
    report["refsKept"] = [
        str(row["name"]) for row in spark.sql(f"SELECT name FROM {name}.refs WHERE name <> 'main'").collect()
    ]

    step("orphans")
    _progress(f"{name}: recording the versions that remain")
    current = current_snapshot(spark, name)
    if commit is not None and current == commit[0]:
        after = at_commit  # nothing committed since the UPDATE: the same snapshot, counted already
    else:
        after = {
            column: column_versions(spark, name, column, current, active=active, legacy=legacy) for column in versioned
        }
    older, older_legacy = _older_snapshot_versions(spark, name, versioned, legacy)
    remaining_versions = {column: older[column] | set(after[column].versions()) for column in versioned}
    # A column still holding the sample's pseudonyms stays out of the inventory: its legacy version is still in use
    # there, and `keys destroy` refuses while a registered column has no inventory entry.
    legacy_left = {c for c in versioned if after[c].legacy_present} | older_legacy
    columns: dict[str, Any] = {}
    erased_values = rewrapped_values = 0
    for column, context in table.columns.items():
        entry: dict[str, Any] = {
            "context": context,
            "versionsBefore": {f"{m}{v}": contracts.count(n) for (m, v), n in sorted(before[column].rows.items())},
        }
        if column in unversioned:
            entry["status"] = "unversioned"
            entry["reason"] = (
                "the values carry no key version (FF1/fpe keeps the identifier's form): not re-keyed, not in the "
                "key inventory; re-key by pseudonymizing the source again"
            )
            entry["unversionedRows"] = contracts.count(before[column].unversioned_rows)
        else:
            rewritten, distinct, legacy_rewrapped = 0, 0, 0
            # No UPDATE committed: nothing was stale when counted, so what is stale now was appended since.
            kept, appended = 0, (after[column].stale_rows(active) if active else 0)
            if column in at_commit and active is not None:
                # What the commit changed, from its parent to itself: a value is stale after it only if it was
                # before (the UDF leaves an erased subject's), so these differences are exact.
                rewritten = at_parent[column].stale_rows(active) - at_commit[column].stale_rows(active)
                distinct = at_parent[column].stale_distinct - at_commit[column].stale_distinct
                legacy_rewrapped = at_parent[column].legacy_rows - at_commit[column].legacy_rows
                kept, kept_distinct, appended = left_by_commit.get(column, (0, 0, 0))
                erased_values += kept_distinct
            rewrapped_values += distinct
            entry |= {
                "status": "rekeyed",
                "rowsRewritten": contracts.count(rewritten),
                "distinctValuesRewritten": contracts.count(distinct),
                "rowsKeptErased": contracts.count(kept),
                "rowsAppendedMeanwhileStale": contracts.count(appended),
                "versionsAfter": {f"{m}{v}": contracts.count(n) for (m, v), n in sorted(after[column].rows.items())},
                "keyVersionsRemaining": sorted(remaining_versions[column]),
                "unversionedRows": contracts.count(before[column].unversioned_rows),
            }
            if legacy:
                entry["legacyRewrapped"] = contracts.count(legacy_rewrapped)
                entry["legacyRowsLeft"] = contracts.count(after[column].legacy_rows)
            if column in legacy_left:
                entry["reason"] = (
                    "AWS sample pseudonyms remain (without --legacy-aws-sample, an erased subject's, or in a snapshot "
                    "a tag or branch keeps): "
                    "left out of the key inventory, so the legacy version cannot be destroyed yet"
                )
        columns[column] = entry
    report["columns"] = columns
    report["erasedValuesKept"] = contracts.count(erased_values)
    report["distinctValuesRewrapped"] = contracts.count(rewrapped_values)
    report["rowsRewritten"] = contracts.count(sum(int(c.get("rowsRewritten", "0")) for c in columns.values()))
    if legacy:
        report["legacyRewrapped"] = contracts.count(sum(int(c.get("legacyRewrapped", "0")) for c in columns.values()))
    report["snapshotAfter"] = contracts.int64(current_snapshot(spark, name))
    record_inventory(
        settings.inventory,
        name,
        {
            column: (table.columns[column], remaining_versions[column])
            for column in versioned
            if column not in legacy_left
        },
        report["snapshotAfter"],
    )
    step("inventory")
    report["stepSeconds"] = steps
    report["seconds"] = round(time.monotonic() - started, 3)
    report["result"] = "rekeyed"
    return report


# ---------------------------------------------------------------------------------------------------------------
# The key inventory


def read_inventory(location: str) -> dict[str, Any]:
    """The inventory at `location` (an empty one when there is none yet), checked against its contract."""
    try:
        text = read_text(location)
    except FileNotFoundError:
        return {"inventoryVersion": 1, "tables": {}}
    except Exception as error:  # an S3 object that does not exist yet
        if getattr(error, "response", {}).get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
            raise
        return {"inventoryVersion": 1, "tables": {}}
    document: Any = json.loads(text)
    contracts.validate("key-inventory", document)
    result: dict[str, Any] = document
    return result


def _with_table(
    inventory: dict[str, Any], table: str, columns: Mapping[str, tuple[str, set[int]]], snapshot: str | None
) -> dict[str, Any]:
    inventory["tables"][table] = {
        "columns": {
            column: {"context": context, "keyVersions": sorted(versions)}
            for column, (context, versions) in columns.items()
        },
        "snapshotId": snapshot,
        "recordedAt": datetime.now(UTC).isoformat(),
    }
    contracts.validate("key-inventory", inventory)
    return inventory


def record_inventory(
    location: str,
    table: str,
    columns: Mapping[str, tuple[str, set[int]]],
    snapshot: str | None,
    attempts: int = 10,
) -> None:
    """Read-modify-write of one table's entry (column -> (context, versions it still holds)), safe against a second
    job recording another table at the same time: without it, both read the same document and the later write
    drops the earlier table's entry. Locally an exclusive lock (flock on `<inventory>.lock`, released by the
    kernel if the process dies) spans the read and the write, and the document is written to a file of its own
    and renamed over the old one. On S3 the put is conditional on the ETag read (or on no object yet) and read
    again on a mismatch, `attempts` times. A reader (`keys destroy`) needs neither: it sees the whole document
    before or after a write, never part of one."""
    if is_s3_uri(location):
        _record_on_s3(location, table, columns, snapshot, attempts)
        return
    import fcntl

    path = local_path(location)
    # Never deleted: a process holding the lock on a removed file would not exclude one locking a new file.
    with open(f"{path}.lock", "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        inventory = _with_table(read_inventory(location), table, columns, snapshot)
        descriptor, partial = tempfile.mkstemp(
            dir=os.path.dirname(os.path.abspath(path)), prefix=".key-inventory-", suffix=".partial"
        )
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(inventory, indent=2) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, path)
        except BaseException:
            os.unlink(partial)
            raise


def _s3_error_code(error: Exception) -> str | None:
    code = getattr(error, "response", {}).get("Error", {}).get("Code")
    return str(code) if code is not None else None


def _record_on_s3(
    location: str, table: str, columns: Mapping[str, tuple[str, set[int]]], snapshot: str | None, attempts: int
) -> None:
    import boto3

    bucket, key = split_s3_uri(location)
    s3 = boto3.client("s3")
    client_error: type[Exception] = s3.exceptions.ClientError
    for attempt in range(attempts):
        condition: dict[str, str]
        try:
            found = s3.get_object(Bucket=bucket, Key=key)
            document: Any = json.loads(found["Body"].read().decode("utf-8"))
            contracts.validate("key-inventory", document)
            condition = {"IfMatch": found["ETag"]}
        except client_error as error:
            if _s3_error_code(error) not in ("NoSuchKey", "404"):
                raise
            document, condition = {"inventoryVersion": 1, "tables": {}}, {"IfNoneMatch": "*"}
        inventory = _with_table(document, table, columns, snapshot)
        try:
            s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=(json.dumps(inventory, indent=2) + "\n").encode("utf-8"),
                ContentType="application/json",
                ServerSideEncryption="aws:kms",
                **condition,
            )
            return
        except client_error as error:
            # 412: another writer's put came between the read and this one; 409: one is under way.
            if _s3_error_code(error) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise
            time.sleep(0.2 * (attempt + 1))
    raise RekeyError(f"the key inventory kept changing under {attempts} attempts to record {table}")


# ---------------------------------------------------------------------------------------------------------------
# The job


def run(settings: RekeySettings) -> dict[str, Any]:
    from ..jobs.failures import root_cause
    from ..jobs.session import build_session

    started = datetime.now(UTC)
    started_ms = int(started.timestamp() * 1000)
    spark = build_session(settings.catalog, app_name="rekey-tables", master=settings.master)
    spark.sparkContext.setLogLevel("ERROR")
    tables: list[dict[str, Any]] = []
    try:
        for table in settings.tables:
            try:
                tables.append(rekey_table(spark, settings, table, started_ms))
            except (RekeyError, PseudonymizationError) as error:
                tables.append({"table": table.name, "result": "failed", "error": str(error)})
            except Exception as error:  # Spark's text around a task failure: only our own value-free message
                tables.append({"table": table.name, "result": "failed", "error": root_cause(error)})
            outcome = tables[-1]
            _progress(f"{table.name}: {outcome['result']}" + (f": {outcome['error']}" if "error" in outcome else ""))
    finally:
        spark.stop()
    return {
        "startedAt": started.isoformat(),
        "finishedAt": datetime.now(UTC).isoformat(),
        "keyInventory": settings.inventory,
        "tables": tables,
        "result": "rekeyed" if all(t["result"] == "rekeyed" for t in tables) else "failed",
    }


def _selected(tables: list[RegisteredTable], names: Sequence[str] | None) -> Iterator[RegisteredTable]:
    known = {table.name for table in tables}
    for name in names or ():
        if name not in known:
            raise JobConfigError(f"--table: {name} is not in the registry")
    yield from (table for table in tables if not names or table.name in names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rekey-tables",
        description=(
            "Rewrite the pseudonymized columns of registered Iceberg tables from older key versions to the active "
            "one through the API's /v1/rewrap (one atomic commit per table), expire the older snapshots, and "
            "record the key versions each table still holds in the key inventory."
        ),
    )
    parser.add_argument("--registry", required=True, help="the table registry (JSON, as the service's)")
    parser.add_argument("--api", required=True, help="the API client settings (JSON: the batch job's api section)")
    parser.add_argument("--report", help="also write the report (JSON) here")
    parser.add_argument("--table", action="append", help="only this registered table (repeatable)")
    parser.add_argument("--master", help="Spark master, e.g. local[2] (spark-submit sets it otherwise)")
    parser.add_argument(
        "--orphan-grace-seconds",
        type=int,
        default=3600,
        help="remove uncommitted files older than the job's start minus this (default 3600)",
    )
    parser.add_argument(
        "--legacy-aws-sample",
        action="store_true",
        help=(
            "also rewrap the AWS sample's pseudonyms (base64, no version prefix) in the selected tables' columns, "
            "once its secret is imported (npm run keys -- import-aws-sample)"
        ),
    )
    args = parser.parse_args(argv)
    try:
        catalog, tables, inventory = parse_registry(read_json(args.registry), args.registry)
        api_raw = read_json(args.api)
        nested = api_raw.get("api")
        api = parse_api(nested if isinstance(nested, dict) else api_raw)
        check_api_key(api)
        if args.orphan_grace_seconds < 0:
            raise JobConfigError("--orphan-grace-seconds: must be 0 or more")
        settings = RekeySettings(
            catalog,
            tuple(_selected(tables, args.table)),
            inventory,
            api,
            master=args.master,
            orphan_grace_seconds=args.orphan_grace_seconds,
            legacy_aws_sample=args.legacy_aws_sample,
        )
    except JobConfigError as error:
        print(f"configuration: {error}", file=sys.stderr)
        return 2
    try:
        report = run(settings)
    except SessionConfigError as error:
        print(f"configuration: {error}", file=sys.stderr)
        return 2
    text = json.dumps(report, indent=2)
    if args.report:
        write_text_whole(args.report, text + "\n")
    print(text)
    return 0 if report["result"] == "rekeyed" else 1


if __name__ == "__main__":
    sys.exit(main())
