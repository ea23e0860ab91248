"""Suppression at ingestion through the streaming job: once a subject's erasure is filed, the subject's records
are counted in each batch's progress and go to neither the table nor the dead-letter table (not even a record
that fails its schema); configured to fail, the job exits 1 naming the cause and appends nothing. Re-ingestion:
after the erasure ran to verified (the real worker and erasure job on the stream's table), the same records
streamed again leave the subject out, counted; after a lift they are written again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spark_udfs.jobs.session import CatalogConfig
from test_support.streaming import StreamJob, put_records, read_table, running
from test_support.suppression import ErasureApi, Registered, erasure_api

from .test_job import DEAD, TABLE, create_stream, event, job_config, rows, settle

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


def create_stream_table(catalog: CatalogConfig) -> None:
    """The stream's table as the job creates it (tables.py), made before the API starts: the service checks at
    start that the tables its erasure registry names exist."""
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.schema import Schema
    from pyiceberg.types import IntegerType, LongType, NestedField, StringType, TimestamptzType

    sql_catalog = SqlCatalog(catalog.name, uri=f"sqlite:///{catalog.uri}", warehouse=f"file://{catalog.warehouse}")
    namespace, name = TABLE.split(".")[1:]
    sql_catalog.create_namespace(namespace)
    columns = [
        ("n", LongType()),
        ("dept_id", IntegerType()),
        ("vin", StringType()),
        ("example_ts", TimestamptzType()),
        ("producedAt", TimestamptzType()),
        ("kinesis_sequence_number", StringType()),
        ("kinesis_arrival_time", TimestamptzType()),
    ]
    schema = Schema(*(NestedField(i + 1, column, kind, required=False) for i, (column, kind) in enumerate(columns)))
    sql_catalog.create_table(
        f"{namespace}.{name}",
        schema,
        properties={"format-version": "2", "write.metadata.metrics.column.vin": "none"},
    )


def numbers(catalog: CatalogConfig) -> list[int]:
    return sorted(read_table(catalog, TABLE).column("n").to_pylist())


RETURNING_RECORDS = 20


def test_erased_then_replayed_the_subject_stays_out_counted_and_after_a_lift_is_written_again(
    kinesis: Any, moto_endpoint: str, catalog: CatalogConfig, tmp_path: Path
) -> None:
    create_stream_table(catalog)
    create_stream(kinesis, "returning", 1)
    registered = Registered(catalog.uri, catalog.warehouse, {TABLE: {"vin": "vin"}})
    subjects = [("vin", SUBJECT_VIN)]
    same_records = [event(n) for n in range(RETURNING_RECORDS)]
    everyone = list(range(RETURNING_RECORDS))
    without_subject = [n for n in everyone if n != 7]
    with erasure_api(("vin",), registered=registered) as api:
        config = job_config(api.server, catalog, moto_endpoint, "returning", tmp_path)
        # One job throughout: it is quiet (no batch) while nothing arrives, so the erasure commits alone.
        with running(StreamJob(config, tmp_path)) as job:
            put_records(kinesis, "returning", same_records)
            settle(job, catalog, RETURNING_RECORDS)
            assert numbers(catalog) == everyone

            api.wait_until_verified(api.file("DSR-STREAM-RETURNING", subjects))
            assert numbers(catalog) == without_subject, "the erasure job deleted the subject's row"

            # The same records again (new sequence numbers, same content): the subject stays out, counted.
            replayed = len(job.batches())
            put_records(kinesis, "returning", same_records)
            settle(job, catalog, 2 * len(without_subject))
            batches = job.batches()[replayed:]
            assert sum(b["rowsSuppressed"] for b in batches) == 1
            assert sum(b["rows"] for b in batches) == len(without_subject)
            assert sum(b["deadLetters"] for b in batches) == 0
            assert numbers(catalog) == sorted(without_subject * 2)

            # The person consents again: once lifted, their record is written.
            api.lift("CONSENT-STREAM-RETURNING", subjects)
            lifted = len(job.batches())
            put_records(kinesis, "returning", same_records)
            settle(job, catalog, 2 * len(without_subject) + RETURNING_RECORDS)
            batches = job.batches()[lifted:]
            assert sum(b["rowsSuppressed"] for b in batches) == 0
            assert sum(b["rows"] for b in batches) == RETURNING_RECORDS
            assert numbers(catalog) == sorted(without_subject * 3 + [7])
            assert job.terminate() == 0
        assert rows(catalog, DEAD) == 0
        assert_value_free(job, api)
