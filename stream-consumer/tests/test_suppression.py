"""Suppression at ingestion through the streaming job: once a subject's erasure is filed, the subject's records
are counted in each batch's progress and go to neither the table nor the dead-letter table (not even a record
that fails its schema); configured to fail, the job exits 1 naming the cause and appends nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spark_udfs.jobs.session import CatalogConfig
from test_support.streaming import StreamJob, put_records, read_table, running
from test_support.suppression import ErasureApi, erasure_api

from .test_job import DEAD, create_stream, event, job_config, rows, settle

SUBJECT_VIN = "SENTINELVIN000007"  # the VIN of event(7)
RECORDS = 200
POISON = b"SENTINEL-POISON not json"
# The subject's record that fails its schema (n is not a number): left out, not a dead letter.
SUBJECT_POISON = json.dumps({"n": "bad", "vin": SUBJECT_VIN}).encode()


@pytest.fixture(scope="module")
def erasure() -> Iterator[ErasureApi]:
    with erasure_api(("vin",)) as api:
        api.file("DSR-STREAM-1", [("vin", SUBJECT_VIN)])
        yield api


def records() -> list[bytes]:
    return [event(n) for n in range(RECORDS)] + [POISON, SUBJECT_POISON]


def assert_value_free(job: StreamJob, erasure: ErasureApi) -> None:
    text = json.dumps(job.events) + job.stderr
    assert SUBJECT_VIN not in text and "SENTINEL" not in text


def test_the_subjects_records_are_counted_and_go_to_neither_table(
    erasure: ErasureApi, kinesis: Any, moto_endpoint: str, catalog: CatalogConfig, tmp_path: Path
) -> None:
    create_stream(kinesis, "suppressed", 1)
    put_records(kinesis, "suppressed", records())
    config = job_config(erasure.server, catalog, moto_endpoint, "suppressed", tmp_path)
    with running(StreamJob(config, tmp_path)) as job:
        job.wait_for(lambda: rows(catalog, DEAD) >= 1, 180, "the poison record in the dead-letter table")
        settle(job, catalog, RECORDS - 1)
        assert job.terminate() == 0
    batches = job.batches()
    assert sum(b["rowsSuppressed"] for b in batches) == 2
    assert sum(b["rows"] for b in batches) == RECORDS - 1 and sum(b["deadLetters"] for b in batches) == 1
    assert job.events[0]["suppressed"] == "drop"
    assert_value_free(job, erasure)
    table = read_table(catalog, "local.streaming.vehicles")
    assert sorted(table.column("n").to_pylist()) == [n for n in range(RECORDS) if n != 7]
    assert table.column("vin").null_count == 0, "no row kept with a null in the subject's place"
    dead = read_table(catalog, DEAD).to_pylist()
    assert [row["reason_code"] for row in dead] == ["not-json"] and dead[0]["record_bytes"] == len(POISON)


def test_configured_to_fail_the_job_exits_1_naming_the_cause_and_appends_nothing(
    erasure: ErasureApi, kinesis: Any, moto_endpoint: str, catalog: CatalogConfig, tmp_path: Path
) -> None:
    create_stream(kinesis, "suppressed-fail", 1)
    put_records(kinesis, "suppressed-fail", records())
    config = job_config(erasure.server, catalog, moto_endpoint, "suppressed-fail", tmp_path, suppressed="fail")
    with running(StreamJob(config, tmp_path)) as job:
        code = job.wait(300)
    assert code == 1
    lines = [line for line in job.stderr.splitlines() if line.startswith("the streaming job stopped: ")]
    assert len(lines) == 1, job.stderr[-3000:]
    assert "erasure was filed" in lines[0] and "suppressed setting is fail" in lines[0], lines[0]
    assert_value_free(job, erasure)
    assert rows(catalog) == 0 and rows(catalog, DEAD) == 0
    assert job.batches() == []
