"""The re-keying job (spark_udfs.rekey.job) end to end: the real API (its own server: these tests rotate its key,
and file an erasure), local Spark and Iceberg, the job as its own process.

Values are pseudonymized under key version 1 into "old" tables, the key is rotated (`keys rotate` on the server's
data folder; the server picks it up within its 5 s refresh), "new" data is written under version 2, and the old
tables are re-keyed: a join on the pseudonym column then finds every subject, the key inventory shows only the
active version, an erased subject keeps its old pseudonym (no new one), and a job killed mid-way leaves a table
entirely old or entirely new, and completes when run again. The UPDATE runs at snapshot isolation with its table
properties restored afterwards (a stream's appends during it kept as written, a concurrent delete retried and
never undone), the counts stay exact when it runs twice, and two writers of the key inventory lose no entry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import requests
from pyspark.sql import SparkSession

from spark_udfs import ApiKeySource, ClientConfig, PseudonymizationClient
from spark_udfs.client import ARROW_STREAM, PseudonymsRefused
from spark_udfs.contracts import validate
from spark_udfs.iceberg import set_table_properties, table_properties
from spark_udfs.iceberg_ops import RESTORE_PREFIX, table_properties_during
from spark_udfs.jobs.config import JobConfigError
from spark_udfs.jobs.session import CatalogConfig
from spark_udfs.rekey.job import (
    UPDATE_PROPERTIES,
    VERSIONED,
    inventory_location,
    main,
    parse_registry,
    read_inventory,
    record_inventory,
    stale_mask,
)
from test_support.servers import ApiServer, rotate_keys, started_api
from test_support.suppression import erasure_on

ROLES = ("pseudonymize", "rewrap", "privacy-officer")
SUBJECTS = 150
ROWS = 400


@dataclass(frozen=True)
class Rotated:
    server: ApiServer
    #: kind ("joined", "erased", ...) -> (table name, {vin: pseudonym under version 1})
    tables: dict[str, tuple[str, dict[str, str]]]

    def client(self, role: str = "pseudonymize") -> PseudonymizationClient:
        return PseudonymizationClient(
            ClientConfig(url=self.server.url, api_key=ApiKeySource(env=None, file=self.server.key_files[role]))
        )

    def call(self, path: str, body: dict[str, Any], role: str = "pseudonymize") -> requests.Response:
        key = Path(self.server.key_files[role]).read_text().strip()
        return requests.post(self.server.url + path, json=body, headers={"x-api-key": key}, timeout=30)


def vins(table: str, count: int = SUBJECTS) -> list[str]:
    return [f"WVWZZZ{table.upper()}{i:05d}" for i in range(count)]


def version_of(pseudonym: str) -> int:
    match = VERSIONED.match(pseudonym)
    assert match is not None
    return int(match.group(2))


def write_table(spark: SparkSession, name: str, vin_pseudonyms: list[str], accounts: list[str] | None = None) -> None:
    """ROWS rows cycling over the subjects (each subject several times), with an FF1 column when given."""
    spark.sql(
        f"CREATE TABLE {name} (id bigint, vin string, account string, note string) USING iceberg "
        "TBLPROPERTIES ('format-version'='2')"
    )
    rows = [
        (i, vin_pseudonyms[i % len(vin_pseudonyms)], accounts[i % len(accounts)] if accounts else None, f"row {i}")
        for i in range(ROWS)
    ]
    # Two appends: two snapshots to expire, two data files.
    for part in (rows[: ROWS // 2], rows[ROWS // 2 :]):
        spark.createDataFrame(part, "id bigint, vin string, account string, note string").writeTo(name).append()


@pytest.fixture(scope="module")
def rotated(spark: SparkSession) -> Iterator[Rotated]:
    """Old tables written under key version 1, then the key rotated to version 2 (the server has switched)."""
    with tempfile.TemporaryDirectory(prefix="rekey-registry-") as folder:
        environment = {**erasure_on(Path(folder)), "PSEUDO_KEYRING_REFRESH_SECONDS": "5"}
        with started_api(ROLES, environment) as server:
            state = Rotated(server, {})
            client = state.client()
            for table in ("joined", "erased", "killed", "streamed", "concurrent", "refused", "late"):
                name = f"local.rekey.{table}_{uuid.uuid4().hex[:8]}"
                subjects = vins(table)
                pseudonyms = client.pseudonymize("vin", subjects)
                assert {version_of(p) for p in pseudonyms} == {1}
                accounts = client.pseudonymize("account_number", [f"{i:010d}" for i in range(20)])
                write_table(spark, name, pseudonyms, accounts if table == "joined" else None)
                state.tables[table] = (name, dict(zip(subjects, pseudonyms, strict=True)))
            rotate_keys(server)
            deadline = time.monotonic() + 60
            while state.call("/v1/pseudonymize", {"context": "vin", "values": ["probe"]}).json()["keyVersion"] != 2:
                assert time.monotonic() < deadline, "the server did not switch to key version 2"
                time.sleep(0.5)
            yield state


def run_job(
    rotated: Rotated,
    warehouse: CatalogConfig,
    tables: dict[str, dict[str, str]],
    folder: Path,
    api_url: str | None = None,
    **popen: Any,
) -> subprocess.Popen[str]:
    """Starts the job as its own process (its own process group: a kill takes Spark's JVM along)."""
    registry = folder / "registry.json"
    registry.write_text(
        json.dumps(
            {
                "catalog": {"type": "jdbc", "name": "local", "uri": warehouse.uri, "warehouse": warehouse.warehouse},
                "tables": [{"name": name, "columns": columns} for name, columns in tables.items()],
                "keyInventory": "inventory/keys.json",
            }
        )
    )
    (folder / "inventory").mkdir(exist_ok=True)
    api = folder / "api.json"
    settings = {"url": api_url or rotated.server.url, "apiKeyFile": rotated.server.key_files["rewrap"]}
    # Generous: a test's proxy may hold a request while it commits to the table (see rewrap_proxy).
    api.write_text(json.dumps({"api": {**settings, "timeoutSeconds": 300}}))
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "spark_udfs.rekey.job", "--registry", str(registry), "--api", str(api)),
            *("--master", "local[2]", "--orphan-grace-seconds", "0"),
        ],
        env={**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_UDFS_PROGRESS_SECONDS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **popen,
    )


def finished(process: subprocess.Popen[str]) -> tuple[int, dict[str, Any], str]:
    """The job's exit code, report and stderr. Its process group (Spark's JVM with it) is killed afterwards, also
    when the wait overruns or fails: a job left running would hold the machine for the tests after it."""
    try:
        out, err = process.communicate(timeout=900)
    finally:
        kill_group(process)
    return process.returncode, json.loads(out) if out.strip() else {}, err


def kill_group(process: subprocess.Popen[str]) -> None:
    """SIGKILL to the job's process group, then reaped; a group already gone (every member exited) is fine."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def wait_for_progress(process: subprocess.Popen[str], text: str, timeout: float = 600.0) -> None:
    """Reads the job's stderr until a line holds `text`, the rest left for `finished`. Fails clearly, with the job
    killed, when the job ends without printing it or prints nothing like it within `timeout` (a guard against a
    hang on a busy machine, never what decides a passing test)."""
    assert process.stderr is not None
    stderr = process.stderr
    seen: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in stderr:
            seen.append(line)
            if text in line:
                found.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if found.is_set():
        return
    ended = not reader.is_alive()
    kill_group(process)
    reader.join(30)
    tail = "".join(seen)[-3000:]
    if ended:
        raise AssertionError(f"the job ended (exit {process.returncode}) before printing {text!r}:\n{tail}")
    raise AssertionError(f"the job printed no {text!r} within {timeout} s:\n{tail}")


def column(spark: SparkSession, name: str, col: str = "vin") -> list[str | None]:
    spark.sql(f"REFRESH TABLE {name}")
    return [row[0] for row in spark.sql(f"SELECT {col} FROM {name} ORDER BY id").collect()]


def test_rewrap_gives_the_active_versions_pseudonym_and_refuses_tampered_ones_by_index(rotated: Rotated) -> None:
    _, old = rotated.tables["joined"]
    subject, pseudonym = next(iter(old.items()))
    rewrapper = rotated.client("rewrap")
    answer = rewrapper.rewrap("vin", [pseudonym, pseudonym])
    assert answer.key_versions == {2} and answer.erased == set()
    assert answer.pseudonyms == rotated.client().pseudonymize("vin", [subject]) * 2
    tampered = pseudonym[:-2] + ("AA" if not pseudonym.endswith("AA") else "BB")
    with pytest.raises(PseudonymsRefused) as refused:
        rewrapper.rewrap("vin", [pseudonym, tampered])
    assert list(refused.value.refused) == [1]
    assert tampered not in str(refused.value) and pseudonym not in str(refused.value)


def test_a_rekeyed_table_joins_data_written_after_the_rotation_and_the_inventory_holds_only_the_active_version(
    spark: SparkSession, rotated: Rotated, warehouse: CatalogConfig, tmp_path: Path
) -> None:
    name, old_pseudonyms = rotated.tables["joined"]
    subjects = list(old_pseudonyms)
    new_name = f"local.rekey.new_{uuid.uuid4().hex[:8]}"
    new = rotated.client().pseudonymize("vin", subjects)
    assert {version_of(p) for p in new} == {2}
    spark.createDataFrame(list(enumerate(new)), "id bigint, vin string").writeTo(new_name).create()
    joined_before = spark.sql(f"SELECT count(DISTINCT o.vin) FROM {name} o JOIN {new_name} n ON o.vin = n.vin")
    assert joined_before.collect()[0][0] == 0  # the rotation broke the join
    accounts_before = column(spark, name, "account")
    snapshots_before = spark.sql(f"SELECT count(*) FROM {name}.snapshots").collect()[0][0]

    code, report, err = finished(
        run_job(rotated, warehouse, {name: {"vin": "vin", "account": "account_number"}}, tmp_path)
    )
    assert code == 0, err[-3000:] + json.dumps(report)
    assert "rekey: " in err and "rewriting" in err  # progress lines on stderr
    table = report["tables"][0]
    assert table["result"] == "rekeyed" and table["activeVersion"] == 2
    assert table["columns"]["vin"]["rowsRewritten"] == str(ROWS)
    assert table["columns"]["vin"]["distinctValuesRewritten"] == str(SUBJECTS)
    assert table["columns"]["vin"]["versionsBefore"] == {"s1": str(ROWS)}
    assert table["columns"]["vin"]["versionsAfter"] == {"s2": str(ROWS)}
    assert int(table["snapshotsExpired"]) >= snapshots_before
    # FF1 carries no version: reported, left alone, kept out of the inventory.
    assert table["columns"]["account"]["status"] == "unversioned"
    assert column(spark, name, "account") == accounts_before
    assert old_pseudonyms[subjects[0]] not in err and old_pseudonyms[subjects[0]] not in json.dumps(report)

    spark.sql(f"REFRESH TABLE {name}")
    joined = spark.sql(f"SELECT count(DISTINCT o.vin) FROM {name} o JOIN {new_name} n ON o.vin = n.vin")
    assert joined.collect()[0][0] == SUBJECTS  # every subject found
    assert spark.sql(f"SELECT count(*) FROM {name}").collect()[0][0] == ROWS
    assert spark.sql(f"SELECT count(*) FROM {name}.snapshots").collect()[0][0] == 1  # the older ones expired
    inventory = json.loads((tmp_path / "inventory" / "keys.json").read_text())
    validate("key-inventory", inventory)
    assert inventory["tables"][name]["columns"] == {"vin": {"context": "vin", "keyVersions": [2]}}


def test_an_erased_subject_keeps_its_old_pseudonym_and_its_version_stays_in_the_inventory(
    spark: SparkSession, rotated: Rotated, warehouse: CatalogConfig, tmp_path: Path
) -> None:
    name, old_pseudonyms = rotated.tables["erased"]
    erased_subject = next(iter(old_pseudonyms))
    filed = rotated.call(
        "/v1/erasure-requests",
        {
            "reference": "rekey-test",
            "reason": "gdpr-art17-1a",
            "subjects": [{"context": "vin", "value": erased_subject}],
        },
        role="privacy-officer",
    )
    assert filed.status_code == 202, filed.text
    before = column(spark, name)

    code, report, err = finished(run_job(rotated, warehouse, {name: {"vin": "vin"}}, tmp_path))
    assert code == 0, err[-3000:] + json.dumps(report)
    after = column(spark, name)
    erased_rows = [i for i, p in enumerate(before) if p == old_pseudonyms[erased_subject]]
    assert erased_rows and all(after[i] == before[i] for i in erased_rows)  # unchanged: no new pseudonym
    assert all(version_of(str(after[i])) == 2 for i in range(ROWS) if i not in erased_rows)
    table = report["tables"][0]["columns"]["vin"]
    assert table["rowsKeptErased"] == str(len(erased_rows)) and table["rowsAppendedMeanwhileStale"] == "0"
    assert report["tables"][0]["erasedValuesKept"] == "1"
    assert table["rowsRewritten"] == str(ROWS - len(erased_rows))
    inventory = json.loads((tmp_path / "inventory" / "keys.json").read_text())
    assert inventory["tables"][name]["columns"]["vin"]["keyVersions"] == [1, 2]  # until the erasure removes them


def test_a_job_killed_mid_way_leaves_the_table_old_or_new_never_half_and_a_rerun_completes(
    spark: SparkSession, rotated: Rotated, warehouse: CatalogConfig, tmp_path: Path
) -> None:
    name, _ = rotated.tables["killed"]
    before = column(spark, name)
    first = run_job(rotated, warehouse, {name: {"vin": "vin"}}, tmp_path)
    try:
        wait_for_progress(first, "rewriting")  # killed once it starts rewriting: before, during or after its commit
    finally:
        kill_group(first)
    assert first.returncode == -signal.SIGKILL or first.returncode == 0  # killed, or done just before the kill
    state = column(spark, name)
    versions = {version_of(str(p)) for p in state}
    assert versions in ({1}, {2})  # never half
    if versions == {1}:
        assert state == before

    code, report, err = finished(run_job(rotated, warehouse, {name: {"vin": "vin"}}, tmp_path))
    assert code == 0, err[-3000:] + json.dumps(report)
    assert {version_of(str(p)) for p in column(spark, name)} == {2}
    assert report["tables"][0]["columns"]["vin"]["keyVersionsRemaining"] == [2]
    rewrapped = rotated.client("rewrap").rewrap("vin", [p for p in before if p is not None])
    assert column(spark, name) == rewrapped.pseudonyms  # the same subjects, row by row


def test_appends_of_a_stream_during_the_rewrite_are_kept_and_their_markers_survive_the_expiry(
    spark: SparkSession, rotated: Rotated, warehouse: CatalogConfig, tmp_path: Path
) -> None:
    """The streaming job's exactly-once appends (markers.append_once) land while the job rewrites: whether they
    commit before the UPDATE (a conflict, retried) or after it, no row is lost, every row written before the job
    is re-keyed, and the markers are still found after the older snapshots expired."""
    from spark_udfs.jobs.markers import already_committed, append_once

    name, old_pseudonyms = rotated.tables["streamed"]
    query_id = str(uuid.uuid4())
    late = list(old_pseudonyms.values())[:10]
    job = run_job(rotated, warehouse, {name: {"vin": "vin"}}, tmp_path)
    try:
        wait_for_progress(job, "rewriting")  # the appends below land while the job rewrites
        for batch in range(3):
            rows = [(100_000 + batch * 10 + k, p, None, f"streamed {batch}") for k, p in enumerate(late)]
            frame = spark.createDataFrame(rows, "id bigint, vin string, account string, note string")
            assert append_once(frame, name, query_id, batch)
        code, report, err = finished(job)
    finally:
        kill_group(job)
    assert code == 0, err[-3000:] + json.dumps(report)
    spark.sql(f"REFRESH TABLE {name}")
    assert spark.sql(f"SELECT count(*) FROM {name}").collect()[0][0] == ROWS + 30
    before_job = [row[0] for row in spark.sql(f"SELECT vin FROM {name} WHERE id < {ROWS}").collect()]
    assert {version_of(str(p)) for p in before_job} == {2}
    assert all(already_committed(spark, name, query_id, batch) for batch in range(3))
    assert "commitConflictsRetried" in report["tables"][0]  # how many, depends on timing: not asserted


def test_the_udfs_stale_check_runs_on_arrow_arrays_with_the_rule_of_the_sql_condition() -> None:
    values = ["s1.a", "r1.b", "s2.c", "h1.d", "s10.e", "s01.f", "s1x", "0123456789", "", None]
    assert stale_mask(pa.array(values), active=2).to_pylist() == [
        *(True, True, False, False, True, False, False, False, False, False)
    ]
    assert stale_mask(pa.array(values, pa.large_string()), active=10).to_pylist()[:5] == [
        True,
        True,
        True,
        False,
        False,
    ]
    sample = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZn"  # 33 bytes: the AWS sample's format
    assert stale_mask(pa.array([sample, "QUJD", "s1.a"]), active=2, legacy=True).to_pylist() == [True, False, True]
    assert stale_mask(pa.array([sample]), active=2).to_pylist() == [False]


def test_the_inventory_sits_beside_the_registry_unless_the_registry_says_where() -> None:
    assert inventory_location("/etc/pseudo/registry.json", None) == "/etc/pseudo/key-inventory.json"
    assert inventory_location("/etc/pseudo/registry.json", "state/keys.json") == "/etc/pseudo/state/keys.json"
    assert inventory_location("/etc/pseudo/registry.json", "/var/keys.json") == "/var/keys.json"
    assert inventory_location("s3://bucket/conf/registry.json", None) == "s3://bucket/conf/key-inventory.json"
    assert inventory_location("s3://bucket/conf/registry.json", "s3://other/k.json") == "s3://other/k.json"
    catalog = {"type": "jdbc", "name": "local", "uri": "catalog.db", "warehouse": "warehouse"}
    raw = {"catalog": catalog, "tables": [{"name": "local.a.b", "columns": {"vin": "vin"}}]}
    assert parse_registry({**raw, "keyInventory": "k.json"}, "conf/registry.json")[2] == "conf/k.json"
    with pytest.raises(JobConfigError, match=r"tables\[0\]\.name"):
        parse_registry({**raw, "tables": [{"name": "a.b", "columns": {"vin": "vin"}}]}, "registry.json")


def test_recording_a_table_keeps_the_other_tables_entries_and_refuses_to_write_an_invalid_document(
    tmp_path: Path,
) -> None:
    location = str(tmp_path / "keys.json")
    record_inventory(location, "local.crm.a", {"vin": ("vin", {2, 1})}, "9130679734744880546")
    record_inventory(location, "local.crm.b", {"email": ("email", set())}, None)
    inventory = json.loads(Path(location).read_text())
    validate("key-inventory", inventory)
    assert inventory["tables"]["local.crm.a"]["columns"] == {"vin": {"context": "vin", "keyVersions": [1, 2]}}
    assert inventory["tables"]["local.crm.a"]["snapshotId"] == "9130679734744880546"
    assert inventory["tables"]["local.crm.b"]["columns"]["email"]["keyVersions"] == []
    with pytest.raises(ValueError):
        record_inventory(location, "local.crm.a", {"vin": ("vin", {0})}, None)
    assert json.loads(Path(location).read_text()) == inventory  # unchanged


def test_the_job_refuses_a_bad_configuration_with_exit_2_before_spark_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry, api = tmp_path / "registry.json", tmp_path / "api.json"
    registry.write_text(json.dumps({"catalog": {"type": "jdbc"}, "tables": []}))
    api.write_text(json.dumps({"url": "http://127.0.0.1:1", "apiKeyEnv": "REKEY_TEST_NO_SUCH_VARIABLE"}))
    assert main(["--registry", str(registry), "--api", str(api)]) == 2
    assert "tables: at least one registered table" in capsys.readouterr().err
    catalog = {"type": "jdbc", "uri": "catalog.db", "warehouse": "warehouse"}
    registry.write_text(json.dumps({"catalog": catalog, "tables": [{"name": "local.a.b", "columns": {"v": "vin"}}]}))
    assert main(["--registry", str(registry), "--api", str(api), "--table", "local.a.c"]) == 2
    assert main(["--registry", str(registry), "--api", str(api)]) == 2
    assert "REKEY_TEST_NO_SUCH_VARIABLE is not set" in capsys.readouterr().err


def rewrap_items(headers: Any, body: bytes) -> int:
    """How many pseudonyms a /v1/rewrap request carries: an Arrow stream's rows (the UDF's), or JSON's list."""
    if headers.get("content-type", "").startswith(ARROW_STREAM):
        return int(pa.ipc.open_stream(body).read_all().num_rows)
    return len(json.loads(body).get("pseudonyms", []))


@contextmanager
def rewrap_proxy(
    target: str, on_rewrap: Callable[[int], None], content_types: list[str] | None = None
) -> Iterator[str]:
    """An HTTP proxy in front of the API that calls `on_rewrap(n)` (n: the how-manieth) before forwarding each
    /v1/rewrap request of more than one pseudonym: those the UPDATE's UDF sends, not the job's probe for the
    active version. The job's requests wait meanwhile, so whatever `on_rewrap` commits lands after the UPDATE
    read the table and before it commits. Their content types go into `content_types` when given."""
    calls = [0]
    lock = threading.Lock()

    class Forward(BaseHTTPRequestHandler):
        def forward(self, body: bytes | None) -> None:
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("x-api-key", "content-type", "accept")}
            answer = requests.request(self.command, target + self.path, data=body, headers=headers, timeout=300)
            self.send_response(answer.status_code)
            for key in ("content-type", "retry-after", "pseudo-key-version"):
                if key in answer.headers:
                    self.send_header(key, answer.headers[key])
            self.send_header("content-length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        def do_GET(self) -> None:
            self.forward(None)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.path.split("?", 1)[0] == "/v1/rewrap" and rewrap_items(self.headers, body) > 1:
                with lock:  # one at a time: the UDF's tasks call concurrently
                    calls[0] += 1
                    if content_types is not None:
                        content_types.append(self.headers.get("content-type", ""))
                    on_rewrap(calls[0])
            self.forward(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()


def test_the_update_runs_at_snapshot_isolation_keeps_concurrent_appends_retries_a_concurrent_delete_and_counts_once(
    spark: SparkSession, rotated: Rotated, warehouse: CatalogConfig, tmp_path: Path
) -> None:
    """While the UDF rewraps, a stream appends rows (under the active key, as writers do after the rotation) on
    every request, and an erasure deletes a row once. Under serializable isolation every append would fail the
    UPDATE's commit; at snapshot isolation only the delete does, once: retried, the UPDATE runs twice, and the
    counts (which accumulators would have doubled) stay those of the one commit. The deleted row stays deleted,
    the appended rows are kept exactly as written, and the table's own update settings are back afterwards."""
    name, old_pseudonyms = rotated.tables["concurrent"]
    set_table_properties(spark, name, {"write.update.mode": "merge-on-read"})  # the owner's: must come back
    properties_before = table_properties(spark, name)
    assert "write.update.isolation-level" not in properties_before  # absent: must stay absent
    before = column(spark, name)
    subjects = list(old_pseudonyms)
    new_pseudonyms = rotated.client().pseudonymize("vin", subjects[:5])
    appended: dict[int, str] = {}

    def concurrently(call: int) -> None:
        if call == 1:
            spark.sql(f"DELETE FROM {name} WHERE id = 0")  # an erasure: copy-on-write, replaces a file being read
        rows = [(1_000_000 + call * 10 + k, p, None, f"appended {call}") for k, p in enumerate(new_pseudonyms)]
        spark.createDataFrame(rows, "id bigint, vin string, account string, note string").writeTo(name).append()
        appended.update({row[0]: row[1] for row in rows})

    content_types: list[str] = []
    with rewrap_proxy(rotated.server.url, concurrently, content_types) as proxy:
        code, report, err = finished(run_job(rotated, warehouse, {name: {"vin": "vin"}}, tmp_path, api_url=proxy))
    assert code == 0, err[-3000:] + json.dumps(report)
    assert content_types and {t.split(";")[0] for t in content_types} == {ARROW_STREAM}  # the UDF sends Arrow
    table = report["tables"][0]
    assert table["commitConflictsRetried"] == 1  # the delete; no append conflicted
    vin = table["columns"]["vin"]
    assert vin["rowsRewritten"] == str(ROWS - 1)  # the UPDATE ran twice, the counts are the commit's
    assert vin["distinctValuesRewritten"] == str(SUBJECTS) and table["distinctValuesRewrapped"] == str(SUBJECTS)
    assert vin["rowsKeptErased"] == "0" and vin["keyVersionsRemaining"] == [2]

    spark.sql(f"REFRESH TABLE {name}")
    rows = {int(r[0]): str(r[1]) for r in spark.sql(f"SELECT id, vin FROM {name}").collect()}
    assert spark.sql(f"SELECT count(*) FROM {name}").collect()[0][0] == len(rows)  # no row twice
    assert 0 not in rows  # the erasure's delete was not undone by the UPDATE's commit
    # At least one append per attempt (the UDF's calls per attempt depend on Spark's tasks and batches).
    assert len(appended) >= 10 and {i: rows[i] for i in appended} == appended  # kept, untouched
    rewrapped = rotated.client("rewrap").rewrap("vin", [str(p) for p in before])
    assert {i: rows[i] for i in range(1, ROWS)} == {i: rewrapped.pseudonyms[i] for i in range(1, ROWS)}
    properties_after = table_properties(spark, name)
    assert properties_after.get("write.update.mode") == "merge-on-read"
    assert "write.update.isolation-level" not in properties_after
    assert not [key for key in properties_after if key.startswith(RESTORE_PREFIX)]


def test_rows_a_writer_on_the_old_key_appends_during_the_update_are_counted_apart_from_an_erased_subjects(
    spark: SparkSession, rotated: Rotated, warehouse: CatalogConfig, tmp_path: Path
) -> None:
    """A writer still within its keyring refresh appends version-1 rows while the UPDATE runs: the commit leaves
    them as written, and the report counts them as rowsAppendedMeanwhileStale, not as an erased subject's rows."""
    name, old_pseudonyms = rotated.tables["late"]
    late = list(old_pseudonyms.values())[:4]

    def append_old_version(call: int) -> None:
        if call == 1:
            rows = [(2_000_000 + k, p, None, "late writer") for k, p in enumerate(late)]
            spark.createDataFrame(rows, "id bigint, vin string, account string, note string").writeTo(name).append()

    with rewrap_proxy(rotated.server.url, append_old_version) as proxy:
        code, report, err = finished(run_job(rotated, warehouse, {name: {"vin": "vin"}}, tmp_path, api_url=proxy))
    assert code == 0, err[-3000:] + json.dumps(report)
    table = report["tables"][0]
    vin = table["columns"]["vin"]
    assert vin["rowsRewritten"] == str(ROWS) and vin["rowsKeptErased"] == "0" and table["erasedValuesKept"] == "0"
    assert vin["rowsAppendedMeanwhileStale"] == str(len(late))
    assert vin["keyVersionsRemaining"] == [1, 2]  # the late rows hold version 1 until a later run
    spark.sql(f"REFRESH TABLE {name}")
    kept = [r[0] for r in spark.sql(f"SELECT vin FROM {name} WHERE id >= 2000000 ORDER BY id").collect()]
    assert kept == late


def test_a_table_that_fails_gets_its_update_settings_back_and_nothing_committed(
    spark: SparkSession, rotated: Rotated, warehouse: CatalogConfig, tmp_path: Path
) -> None:
    name, old_pseudonyms = rotated.tables["refused"]
    pseudonym = next(iter(old_pseudonyms.values()))
    tampered = pseudonym[:-2] + ("AA" if not pseudonym.endswith("AA") else "BB")
    spark.sql(f"UPDATE {name} SET vin = '{tampered}' WHERE id = 3")
    set_table_properties(spark, name, {"write.update.isolation-level": "serializable"})
    spark.sql(f"ALTER TABLE {name} UNSET TBLPROPERTIES IF EXISTS ('write.update.mode')")
    before, snapshot = column(spark, name), spark.sql(f"SELECT count(*) FROM {name}.snapshots").collect()[0][0]

    code, report, err = finished(run_job(rotated, warehouse, {name: {"vin": "vin"}}, tmp_path))
    assert code == 1 and report["tables"][0]["result"] == "failed", err[-3000:] + json.dumps(report)
    assert tampered not in json.dumps(report) and tampered not in err
    assert column(spark, name) == before
    assert spark.sql(f"SELECT count(*) FROM {name}.snapshots").collect()[0][0] == snapshot  # nothing committed
    properties = table_properties(spark, name)
    assert properties.get("write.update.isolation-level") == "serializable"
    assert "write.update.mode" not in properties
    assert not [key for key in properties if key.startswith(RESTORE_PREFIX)]


def test_statement_properties_are_restored_as_they_were_after_a_failure_and_after_a_killed_run(
    spark: SparkSession,
) -> None:
    name = f"local.rekey.properties_{uuid.uuid4().hex[:8]}"
    spark.sql(f"CREATE TABLE {name} (id bigint) USING iceberg TBLPROPERTIES ('write.update.mode'='merge-on-read')")
    original = table_properties(spark, name)
    assert "write.update.isolation-level" not in original

    with pytest.raises(RuntimeError), table_properties_during(spark, name, UPDATE_PROPERTIES) as changed:
        assert changed == UPDATE_PROPERTIES
        inside = table_properties(spark, name)
        assert {key: inside[key] for key in UPDATE_PROPERTIES} == UPDATE_PROPERTIES
        raise RuntimeError("the statement failed")
    assert table_properties(spark, name) == original

    # A run killed inside leaves the settings and their record: the next run restores them before it reads them.
    set_table_properties(
        spark,
        name,
        {**UPDATE_PROPERTIES, **{RESTORE_PREFIX + "write.update.mode": "merge-on-read"}}
        | {RESTORE_PREFIX + "write.update.isolation-level": "(absent)"},
    )
    with table_properties_during(spark, name, UPDATE_PROPERTIES):
        pass
    assert table_properties(spark, name) == original


def test_two_writers_of_a_local_inventory_lose_no_entry(tmp_path: Path) -> None:
    location = str(tmp_path / "keys.json")

    def record(writer: int) -> None:
        for i in range(15):
            record_inventory(location, f"local.crm.w{writer}_{i}", {"vin": ("vin", {2})}, None)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(record, range(4)))
    inventory = read_inventory(location)
    assert len(inventory["tables"]) == 60
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


def test_two_writers_of_an_inventory_on_s3_lose_no_entry(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    for key, value in {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(key, value)
    bucket = f"inventory-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    location = f"s3://{bucket}/conf/key-inventory.json"

    def record(writer: int) -> None:
        for i in range(8):
            record_inventory(location, f"local.crm.w{writer}_{i}", {"vin": ("vin", {2})}, None, attempts=50)

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(record, range(3)))
    assert len(read_inventory(location)["tables"]) == 24
