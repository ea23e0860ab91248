"""The erasure job as its own process (spark-submit style) on a local Iceberg table with history: at least 20
snapshots, merge-on-read deletes and updates, a tag, a branch, and an orphan file from a failed write. The
proof is re-checked here independently: every file under the table location, byte by byte."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

from spark_udfs.jobs.session import CatalogConfig

from .conftest import Api

CUSTOMERS = 400


def emails(count: int) -> list[str]:
    return [f"sentinel.customer{i:04d}@example.com" for i in range(count)]


@pytest.fixture()
def history(spark: SparkSession, api: Api, warehouse: CatalogConfig) -> tuple[str, dict[str, str]]:
    """A table of 25 appends, MOR deletes and an update, a tag and a branch; returns (name, email -> pseudonym)."""
    name = f"local.crm.customers_{uuid.uuid4().hex[:8]}"
    mails = emails(CUSTOMERS)
    pseudonyms = dict(zip(mails, _pseudonymize(api, mails), strict=True))
    spark.sql(
        f"CREATE TABLE {name} (id bigint, email string, note string) USING iceberg TBLPROPERTIES ("
        "'format-version'='2', 'write.delete.mode'='merge-on-read', 'write.update.mode'='merge-on-read', "
        # Uncompressed, so that the test's own raw byte scan can see values (the job also decodes files).
        "'write.parquet.compression-codec'='uncompressed')"
    )
    for snapshot in range(25):
        rows = [
            (snapshot * 1000 + k, pseudonyms[mails[(snapshot * 16 + k) % CUSTOMERS]], f"note {snapshot}")
            for k in range(40)
        ]
        spark.createDataFrame(rows, "id bigint, email string, note string").writeTo(name).append()
        if snapshot == 3:
            spark.sql(f"ALTER TABLE {name} CREATE TAG `audit_2026` AS OF VERSION {_current(spark, name)}")
    spark.sql(f"DELETE FROM {name} WHERE id % 7 = 0")  # merge-on-read: position delete files
    spark.sql(f"UPDATE {name} SET note = 'updated' WHERE id % 11 = 0")
    spark.sql(f"ALTER TABLE {name} CREATE BRANCH `experiment`")
    spark.createDataFrame(
        [(99_999, pseudonyms[mails[0]], "branch only")], "id bigint, email string, note string"
    ).writeTo(f"{name}.branch_experiment").append()
    # An orphan: a data file a failed write left behind, never committed, holding a subject.
    location = _location(spark, name)
    pq.write_table(
        pa.table({"id": [1], "email": [pseudonyms[mails[0]]], "note": ["orphan"]}),
        os.path.join(location, "data", "orphan-from-failed-write.parquet"),
        compression="none",
    )
    assert spark.sql(f"SELECT count(*) FROM {name}.snapshots").collect()[0][0] >= 20
    return name, pseudonyms


def _pseudonymize(api: Api, values: list[str]) -> list[str]:
    from spark_udfs import PseudonymizationClient

    return PseudonymizationClient(api.client()).pseudonymize("email", values)


def _current(spark: SparkSession, name: str) -> int:
    return int(
        spark.sql(
            f"SELECT snapshot_id FROM {name}.history WHERE is_current_ancestor ORDER BY made_current_at DESC LIMIT 1"
        ).collect()[0][0]
    )


def _location(spark: SparkSession, name: str) -> str:
    rows = {row["col_name"]: row["data_type"] for row in spark.sql(f"DESCRIBE TABLE EXTENDED {name}").collect()}
    return str(rows["Location"]).removeprefix("file:").removeprefix("//")


def files_holding(location: str, needles: list[str]) -> list[str]:
    """The test's own check: raw bytes of every file, and the values of every Parquet file."""
    found = []
    encoded = [n.encode() for n in needles]
    for folder, _, names in os.walk(location):
        for file in names:
            path = os.path.join(folder, file)
            content = Path(path).read_bytes()
            if any(n in content for n in encoded):
                found.append(os.path.relpath(path, location))
            elif file.endswith(".parquet"):
                table = pq.read_table(path)
                values = {v for column in table.columns if pa.types.is_string(column.type) for v in column.to_pylist()}
                if values & set(needles):
                    found.append(os.path.relpath(path, location))
    return found


def run_job(order: dict[str, Any], folder: Path) -> tuple[int, dict[str, Any], str]:
    order_file, certificate_file = folder / "order.json", folder / "certificate.json"
    order_file.write_text(json.dumps(order))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "spark_udfs.erasure.job",
            "--order",
            str(order_file),
            "--certificate",
            str(certificate_file),
            "--master",
            "local[2]",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYSPARK_PYTHON": sys.executable},
    )
    certificate = json.loads(certificate_file.read_text()) if certificate_file.exists() else {}
    return done.returncode, certificate, done.stdout + done.stderr


def order_for(name: str, warehouse: CatalogConfig, subjects: list[str]) -> dict[str, Any]:
    return {
        "runId": f"run-{uuid.uuid4()}",
        "requestIds": ["er-test"],
        "subjects": [{"context": "email", "pseudonyms": [p]} for p in subjects],
        "tables": [{"name": name, "columns": {"email": "email"}}],
        "catalog": {"name": "local", "type": "jdbc", "uri": warehouse.uri, "warehouse": warehouse.warehouse},
        "orphanGraceSeconds": 0,
    }


@pytest.mark.parametrize("count", [1, 50])
def test_erases_subjects_from_the_table_and_its_whole_history(
    spark: SparkSession, warehouse: CatalogConfig, history: tuple[str, dict[str, str]], tmp_path: Path, count: int
) -> None:
    name, pseudonyms = history
    subjects = [pseudonyms[mail] for mail in emails(count)]
    location = _location(spark, name)
    assert files_holding(location, subjects), "before erasure the scan must find the subjects (so it can fail)"
    table = spark.table(name)
    before = {row["id"] for row in table.where(~table.email.isin(subjects)).select("id").collect()}

    code, certificate, output = run_job(order_for(name, warehouse, subjects), tmp_path)
    assert code == 0, output
    assert "sentinel" not in output

    # Independently of the job: no file under the table location holds any of the pseudonyms, raw or decoded.
    assert files_holding(location, subjects) == []
    spark.sql(f"REFRESH TABLE {name}")
    snapshots = [int(r[0]) for r in spark.sql(f"SELECT snapshot_id FROM {name}.snapshots").collect()]
    assert len(snapshots) == 1
    listed = ", ".join(repr(s) for s in subjects)
    for snapshot in snapshots:
        assert (
            spark.sql(f"SELECT count(*) FROM {name} VERSION AS OF {snapshot} WHERE email IN ({listed})").collect()[0][0]
            == 0
        )
    after = {row["id"] for row in spark.table(name).select("id").collect()}
    assert after == before, "every other row is still there, and only those"
    assert [r["name"] for r in spark.sql(f"SELECT name FROM {name}.refs").collect()] == ["main"]
    metadata_files = [f for f in os.listdir(os.path.join(location, "metadata")) if f.endswith(".metadata.json")]
    assert len(metadata_files) == 1

    report = certificate["tables"][0]
    assert certificate["result"] == "verified" and certificate["subjects"] == count
    assert report["verification"]["result"] == "passed" and report["verification"]["filesWithMatches"] == []
    # 64-bit values travel as decimal strings (contracts/erasure-certificate.schema.json)
    assert int(report["rowsDeleted"]) > 0 and report["snapshotBefore"] != report["snapshotAfter"]
    assert int(report["dataFilesRewritten"]) > 0, "files whose merge-on-read deletes mask rows are rewritten"
    assert {(r["name"], r["type"], r["action"]) for r in report["refs"]} == {
        ("audit_2026", "tag", "dropped"),
        ("experiment", "branch", "dropped"),
    }
    assert int(report["orphanFilesDeleted"]) >= 1
    assert "sentinel" not in json.dumps(certificate) and not any(s in json.dumps(certificate) for s in subjects)


def test_a_bad_order_is_refused_before_spark_starts(warehouse: CatalogConfig, tmp_path: Path) -> None:
    bad = order_for("local.x", warehouse, ["s1.abc"])  # two parts: the contract wants <catalog>.<namespace>.<table>
    code, _, output = run_job(bad, tmp_path)
    assert code == 2
    assert "order: $.tables[0].name: does not have the required form" in output


@pytest.mark.parametrize("pseudonym", ["x') OR true --", "a\\'b\\", "tab\tnew\nline", "ÄÖÜ€ß", "😀", "s1.AbC-_09"])
def test_a_pseudonym_of_any_alphabet_is_one_exact_sql_literal_in_spark(spark: SparkSession, pseudonym: str) -> None:
    """FPE pseudonyms of a custom alphabet may hold quotes, backslashes or any other character the policy allows."""
    from spark_udfs.erasure.job import _sql_string

    assert spark.sql(f"SELECT {_sql_string(pseudonym)} AS p").collect()[0]["p"] == pseudonym


def _newest_metadata_snapshot(location: str) -> int | None:
    """The current snapshot id of the newest metadata.json file (read from disk, no catalog, no lock)."""
    for path in sorted(Path(location, "metadata").glob("*.metadata.json"), reverse=True):
        try:
            snapshot: int | None = json.loads(path.read_text()).get("current-snapshot-id")
            return snapshot
        except (json.JSONDecodeError, OSError):  # being written
            continue
    return None


def test_a_rerun_after_a_kill_past_the_delete_certifies_the_whole_run(
    spark: SparkSession, warehouse: CatalogConfig, history: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    """Killed after its DELETE committed and run again under the same run id (as the runner does), the job's
    certificate names the snapshot before the first attempt and the rows that attempt deleted."""
    name, pseudonyms = history
    subjects = [pseudonyms[mail] for mail in emails(5)]
    listed = ", ".join(repr(s) for s in subjects)
    rows_of_subjects = spark.sql(f"SELECT count(*) FROM {name} WHERE email IN ({listed})").collect()[0][0]
    assert rows_of_subjects > 0
    before = _current(spark, name)
    location = _location(spark, name)
    order = order_for(name, warehouse, subjects)
    order_file, certificate_file = tmp_path / "order.json", tmp_path / "certificate.json"
    order_file.write_text(json.dumps(order))
    first = subprocess.Popen(
        [
            *(sys.executable, "-m", "spark_udfs.erasure.job", "--order", str(order_file)),
            *("--certificate", str(certificate_file), "--master", "local[2]"),
        ],
        env={**os.environ, "PYSPARK_PYTHON": sys.executable},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own group: the kill takes Spark's JVM along
    )
    try:
        while _newest_metadata_snapshot(location) == before:  # the first commit after `before` is the DELETE
            assert first.poll() is None, "the job ended before its DELETE committed"
            time.sleep(0.02)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert not certificate_file.exists(), "killed after the DELETE, before the certificate"

    code, certificate, output = run_job(order, tmp_path)
    assert code == 0, output
    report = certificate["tables"][0]
    assert report["snapshotBefore"] == str(before)
    assert int(report["rowsDeleted"]) == rows_of_subjects
    assert report["verification"]["result"] == "passed" and certificate["result"] == "verified"
    assert files_holding(location, subjects) == []


def _manifest_values(location: str) -> list[bytes]:
    """Every string and bytes value in every Avro file under the table's metadata folder (decoded)."""
    import fastavro

    found: list[bytes] = []

    def leaves(value: object) -> None:
        if isinstance(value, dict):
            for item in value.values():
                leaves(item)
        elif isinstance(value, list | tuple):
            for item in value:
                leaves(item)
        elif isinstance(value, str):
            found.append(value.encode())
        elif isinstance(value, bytes | bytearray):
            found.append(bytes(value))

    folder = os.path.join(location, "metadata")
    for file in os.listdir(folder):
        if file.endswith(".avro"):
            with open(os.path.join(folder, file), "rb") as handle:
                for record in fastavro.reader(handle):
                    leaves(record)
    return found


@pytest.mark.parametrize("layout", ["a manifest per append", "one manifest, the subject's file removed whole"])
def test_a_subject_that_bounds_its_files_leaves_no_prefix_in_any_manifest(
    spark: SparkSession, warehouse: CatalogConfig, tmp_path: Path, layout: str
) -> None:
    """A removed file stays in its manifest as a DELETED entry with its column bounds (16-character prefixes):
    when the subject's pseudonym was a file's lowest value, the DELETE alone would leave that prefix behind."""
    name = f"local.crm.bounds_{uuid.uuid4().hex[:8]}"
    spark.sql(
        f"CREATE TABLE {name} (id bigint, email string) USING iceberg "
        "TBLPROPERTIES ('format-version'='2', 'write.parquet.compression-codec'='uncompressed')"
    )
    subject = "s1.AAAAAAAAAAAAAAAAAAAAAA-subject"  # sorts before every other value: each file's lower bound
    schema = "id bigint, email string"
    if layout == "a manifest per append":
        for batch in range(5):
            rows = [(batch * 100 + k, f"s1.Z{batch:02d}{k:03d}-other-value-xxxx") for k in range(20)]
            spark.createDataFrame([*rows, (batch * 100 + 99, subject)], schema).writeTo(name).append()
    else:
        spark.createDataFrame([(1, subject), (2, subject)], schema).coalesce(1).writeTo(name).append()
        others = [(10 + k, f"s1.Z{k:03d}-other-value-xxxxxxxx") for k in range(20)]
        spark.createDataFrame(others, schema).coalesce(1).writeTo(name).append()
        spark.sql(f"CALL local.system.rewrite_manifests(table => '{name.split('.', 1)[1]}')")
        assert spark.sql(f"SELECT count(*) FROM {name}.manifests").collect()[0][0] == 1
    location = _location(spark, name)
    prefix = subject[:16].encode()
    assert any(v.startswith(prefix) for v in _manifest_values(location)), "the bound is in a manifest before"

    code, certificate, output = run_job(order_for(name, warehouse, [subject]), tmp_path)
    assert code == 0, output
    report = certificate["tables"][0]
    assert report["verification"]["result"] == "passed" and int(report["manifestsRewritten"]) >= 1
    assert not any(prefix in v for v in _manifest_values(location))
    spark.sql(f"REFRESH TABLE {name}")  # this session's cached table names manifests the job's expiry deleted
    assert spark.sql(f"SELECT count(*) FROM {name}").collect()[0][0] == (100 if layout.startswith("a ") else 20)
