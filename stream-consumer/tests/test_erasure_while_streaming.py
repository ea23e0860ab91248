"""An erasure on a table the streaming job is appending to: the erasure retries its commit conflicts and
verifies, the stream keeps appending, and after a SIGKILL and restart of the streaming job every record is
in the table exactly once, except the erased subject's."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from spark_udfs.jobs.session import CatalogConfig
from test_support.servers import ApiServer
from test_support.streaming import StreamJob, put_records, read_table, running

from .test_job import TABLE, client, create_stream, event, job_config, rows, settle

SUBJECT_VIN = "SENTINELVIN000007"
# Records n with n % 3000 == 7 carry the subject's VIN (see test_job.event): two among the first 4,000.
INITIAL = 4000
ERASED = [n for n in range(INITIAL) if n % 3000 == 7]


def test_erasure_and_streaming_appends_on_one_table(
    api: ApiServer, kinesis: Any, moto_endpoint: str, catalog: CatalogConfig, tmp_path: Path
) -> None:
    create_stream(kinesis, "erased", 2)
    put_records(kinesis, "erased", (event(n) for n in range(INITIAL)))
    config = job_config(api, catalog, moto_endpoint, "erased", tmp_path)
    subject = client(api).pseudonymize("vin", [SUBJECT_VIN])[0]
    order = {
        "runId": f"run-{uuid.uuid4()}",
        "requestIds": ["er-stream"],
        "subjects": [{"context": "vin", "pseudonyms": [subject]}],
        "tables": [{"name": TABLE, "columns": {"vin": "vin"}}],
        "catalog": {"name": "local", "type": "jdbc", "uri": catalog.uri, "warehouse": catalog.warehouse},
        # Files younger than a minute may belong to a batch in flight: never orphans (see README, erasure).
        "orphanGraceSeconds": 60,
    }
    (tmp_path / "order.json").write_text(json.dumps(order))
    fresh = (n for n in itertools.count(INITIAL) if n % 3000 != 7)  # no new records of the erased subject
    later: list[int] = []

    with running(StreamJob(config, tmp_path)) as job:
        job.wait_for(lambda: rows(catalog) >= INITIAL, 180, f"the first {INITIAL:,} rows")
        erasure = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "spark_udfs.erasure.job",
                "--order",
                str(tmp_path / "order.json"),
                "--certificate",
                str(tmp_path / "certificate.json"),
                "--master",
                "local[2]",
            ],
            env={**os.environ, "PYSPARK_PYTHON": sys.executable},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # Records keep flowing while the erasure runs (3,000 over its first seconds): appends and the erasure's
        # commits interleave.
        while erasure.poll() is None and len(later) < 3000:
            chunk = [next(fresh) for _ in range(500)]
            put_records(kinesis, "erased", (event(n) for n in chunk))
            later += chunk
            time.sleep(0.5)
        output, _ = erasure.communicate(timeout=600)
        assert erasure.returncode == 0, output[-3000:]
        settle(job, catalog, INITIAL - len(ERASED) + len(later))
        job.kill()  # no chance to finish anything

    last = [next(fresh) for _ in range(500)]
    put_records(kinesis, "erased", (event(n) for n in last))
    with running(StreamJob(config, tmp_path)) as again:
        settle(again, catalog, INITIAL - len(ERASED) + len(later) + len(last))
        assert again.terminate() == 0

    certificate = json.loads((tmp_path / "certificate.json").read_text())
    assert certificate["result"] == "verified", certificate
    assert certificate["tables"][0]["commitConflictsRetried"] >= 0  # how often the stream's commits got in first
    table = read_table(catalog, TABLE)
    expected = sorted([n for n in range(INITIAL) if n not in ERASED] + later + last)
    assert sorted(table.column("n").to_pylist()) == expected, "every record once, the erased subject's none"
    assert subject not in set(table.column("vin").to_pylist())
