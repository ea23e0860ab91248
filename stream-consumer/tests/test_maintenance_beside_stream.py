"""The table maintenance job on the table the real streaming job is appending to (issue 15): the stream keeps
committing while maintenance compacts, rewrites manifests and expires snapshots; the streaming job is SIGKILLed
once compaction has started and restarted; afterwards every record is in the table exactly once, the replayed
micro-batch was recognised by its marker (markers are folded before snapshots expire), and a subject erased
before maintenance stays absent (compaction reads the current snapshot only)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pyiceberg.catalog.sql import SqlCatalog

from spark_udfs.jobs.session import CatalogConfig
from test_support.servers import ApiServer
from test_support.streaming import StreamJob, put_records, read_table, running

from .test_job import TABLE, client, create_stream, event, job_config, settle

STREAM = "maintained"
SUBJECT_VIN = "SENTINELVIN000007"  # the VIN of event(n) for n % 3000 == 7: n = 7 among the first records
INITIAL = 1000
#: Records put per second while maintenance runs: small micro-batches the stream keeps up with.
CHUNK = 100
#: How long maintenance may run at most (it takes a few minutes on 2 busy cores).
MAINTENANCE_TIMEOUT = 900


class MaintenanceJob:
    """The maintenance job as the service's runner starts it (`python -m spark_udfs.maintenance.job`, as
    spark-udfs/tests/test_maintenance.py runs it), in its own process group, its output followed while it runs
    (the `maintain-tables: <table>: <step>` progress lines say which step it is in)."""

    def __init__(self, registry: dict[str, Any], folder: Path) -> None:
        registry_file, self.report_file = folder / "registry.json", folder / "report.json"
        registry_file.write_text(json.dumps(registry))
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "spark_udfs.maintenance.job",
                "--registry",
                str(registry_file),
                "--report",
                str(self.report_file),
                "--master",
                "local[2]",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            env={**os.environ, "PYSPARK_PYTHON": sys.executable},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def running(self) -> bool:
        return self.process.poll() is None

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def output(self) -> str:
        return "".join(self.lines)[-4000:]

    def wait(self, timeout: float) -> tuple[int, dict[str, Any]]:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code, json.loads(self.report_file.read_text()) if self.report_file.exists() else {}


@contextmanager
def maintaining(registry: dict[str, Any], folder: Path) -> Iterator[MaintenanceJob]:
    """Starts the maintenance job; always kills what is left of it."""
    job = MaintenanceJob(registry, folder)
    try:
        yield job
    finally:
        if job.running():
            os.killpg(job.process.pid, signal.SIGKILL)
            job.process.wait(timeout=30)


def erase(catalog: CatalogConfig, pseudonym: str) -> None:
    """The subject's rows deleted in one commit (pyiceberg, from this process), as an erasure leaves the table."""
    sql_catalog = SqlCatalog(catalog.name, uri=f"sqlite:///{catalog.uri}", warehouse=f"file://{catalog.warehouse}")
    sql_catalog.load_table(TABLE.split(".", 1)[1]).delete(f"vin == '{pseudonym}'")


def latest_batch(log: Path) -> int:
    """The newest batch id in a checkpoint log (offsets/ or commits/), -1 when empty."""
    return max((int(path.name) for path in log.glob("*") if path.name.isdigit()), default=-1)


def query_id(job: StreamJob) -> str:
    return str(next(e["queryId"] for e in job.events if e.get("event") == "started"))


def test_maintenance_while_the_stream_appends_through_a_kill_and_restart(
    api: ApiServer, kinesis: Any, moto_endpoint: str, catalog: CatalogConfig, tmp_path: Path
) -> None:
    create_stream(kinesis, STREAM, 2)
    put_records(kinesis, STREAM, (event(n) for n in range(INITIAL)))
    # Micro-batches of at most 2 x 100 records every second: many snapshots and small files to maintain.
    config = job_config(api, catalog, moto_endpoint, STREAM, tmp_path, source={"maxRecordsPerShard": 100})
    checkpoint = Path(config["checkpointLocation"])
    subject = client(api).pseudonymize("vin", [SUBJECT_VIN])[0]
    erased = [n for n in range(INITIAL) if n % 3000 == 7]
    fresh = (n for n in itertools.count(INITIAL) if n % 3000 != 7)  # the erased subject sends nothing more
    fed: list[int] = []

    def feed() -> None:
        chunk = [next(fresh) for _ in range(CHUNK)]
        put_records(kinesis, STREAM, (event(n) for n in chunk))
        fed.extend(chunk)

    def tick() -> None:
        assert time.monotonic() < give_up, "maintenance still running: " + maintenance.output()
        time.sleep(1)

    registry = {
        "catalog": {"name": "local", "type": "jdbc", "uri": catalog.uri, "warehouse": catalog.warehouse},
        # Retention 0 h but the newest snapshot: every other snapshot, the stream's markers in them, expires (the
        # job folds the markers into table properties first). The orphan grace stays at its floor (1 h): a
        # younger file may belong to a batch in flight.
        "maintenance": {"snapshotRetentionHours": 0, "retainLastSnapshots": 1, "orphanGraceHours": 1},
        "tables": [{"name": TABLE, "columns": {"vin": "vin"}}],
    }

    with running(StreamJob(config, tmp_path)) as first:
        settle(first, catalog, INITIAL)
        erase(catalog, subject)  # while the stream is idle: nothing new to read
        before_compaction = max(b["batchId"] for b in first.batches() if b["appended"]["rows"])
        with maintaining(registry, tmp_path) as maintenance:
            give_up = time.monotonic() + MAINTENANCE_TIMEOUT
            while True:
                # Batches appended before this look at the progress lines: if compaction has not started yet, they
                # were committed before the expiry reads the snapshots (later: it folds their markers).
                appended = [b["batchId"] for b in first.batches() if b["appended"]["rows"]]
                if maintenance.said(f"maintain-tables: {TABLE}: compaction"):
                    break
                assert maintenance.running(), maintenance.output()
                before_compaction = max(appended)
                feed()  # the stream commits while maintenance starts Spark and reads the table
                tick()
            # Compaction has started. The stream catches up with what was put, then is killed after its last
            # batch's Iceberg commit; dropping that batch from the checkpoint's commit log leaves the checkpoint as
            # a crash between the Iceberg commit and the checkpoint's commit does: the restart replays the batch,
            # and only its marker keeps it from being appended twice (kills mid-batch: test_job.py).
            first.wait_for(
                lambda: sum(b["rows"] for b in first.batches()) == INITIAL + len(fed), 300, "every record put so far"
            )
            first.wait_for(
                lambda: latest_batch(checkpoint / "commits") == latest_batch(checkpoint / "offsets"),
                60,
                "the last batch in the checkpoint's commit log",
            )
            first.kill()
            replayed = latest_batch(checkpoint / "commits")
            for name in (str(replayed), f".{replayed}.crc"):
                (checkpoint / "commits" / name).unlink(missing_ok=True)

            with running(StreamJob(config, tmp_path)) as again:
                while maintenance.running():
                    # It keeps committing through the rest of maintenance: records put as fast as it takes them
                    # once it is back (no backlog left to wait for at the end).
                    appended_rows = sum(
                        b["rows"] for job in (first, again) for b in job.batches() if b["appended"]["rows"]
                    )
                    if appended_rows >= INITIAL + len(fed) - CHUNK:
                        feed()
                    tick()
                code, report = maintenance.wait(60)
                output = maintenance.output()
                feed()
                settle(again, catalog, INITIAL - len(erased) + len(fed))
                assert again.terminate() == 0

    assert code == 0, output
    assert report["result"] == "ok", report
    table = report["tables"][0]
    # orphanFilesRemoved may be 0 with orphansDeferred set: the stream committing while the orphan action reads
    # the metadata log deletes old metadata.json files under it (delete-after-commit); the orphans wait for the
    # next run and the table is consistent. Either way the result is ok.
    assert table["result"] == "ok", table
    assert table["compaction"]["dataFilesRewritten"] > 0
    assert table["expiry"]["snapshotsExpired"] > 0

    # The replayed batch had been appended before the kill; after the restart it was recognised and skipped.
    # (Whether its marker was still in a snapshot or already only in the folded watermark depends on timing.)
    query = query_id(first)
    assert query_id(again) == query  # the query id comes from the checkpoint
    assert [b["appended"]["rows"] for b in first.batches() if b["batchId"] == replayed] == [True]
    replays = [b for b in again.batches() if b["batchId"] == replayed]
    assert len(replays) == 1 and replays[0]["rows"] > 0 and replays[0]["appended"]["rows"] is False, replays
    # The markers of the batches committed before compaction started were folded before their snapshots expired.
    assert table["expiry"]["streamMarkersFolded"][query] >= before_compaction

    rows = read_table(catalog, TABLE)
    expected = sorted([n for n in range(INITIAL) if n not in erased] + fed)
    assert sorted(rows.column("n").to_pylist()) == expected, "every record once, the erased subject's none"
    assert subject not in set(rows.column("vin").to_pylist())
