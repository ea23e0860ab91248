"""The streaming job as its own process (local Spark, Iceberg on a SQLite catalog) reading moto's Kinesis
and calling the real API: exactly-once through SIGKILL, resharding, dead letters, API outages."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from spark_udfs import ApiKeySource, ClientConfig, PseudonymizationClient
from spark_udfs.jobs.session import CatalogConfig
from stream_consumer.job import main
from stream_consumer.records import DeadLetterConfig, DeclaredSchema, RecordProcessor, decrypt_dead_letter
from test_support.servers import ApiServer, FaultProxy, moto_server
from test_support.streaming import StreamJob, put_records, read_table, running

TABLE = "local.streaming.vehicles"
DEAD = "local.streaming.vehicles_dead_letter"


def event(n: int) -> bytes:
    return json.dumps(
        {
            "n": n,
            "dept_id": n % 50,
            "vin": f"SENTINELVIN{n % 3000:06d}",
            "example_ts": "2026-01-01T00:00:00Z",
            "producedAt": datetime.now(UTC).isoformat(),
        }
    ).encode()


def job_config(
    server: ApiServer, catalog: CatalogConfig, endpoint: str, stream: str, folder: Path, **overrides: Any
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "source": {"streamName": stream, "region": "eu-west-1", "endpointUrl": endpoint, "maxRecordsPerShard": 1000},
        "schema": {
            "fields": {
                "n": "long",
                "dept_id": "int",
                "vin": "string",
                "example_ts": "timestamp",
                "producedAt": "timestamp",
            },
            "required": ["n", "vin"],
        },
        "columns": {"vin": "vin"},
        "api": {"url": server.url, "apiKeyFile": server.key_files["pseudonymize"]},
        "catalog": {"uri": catalog.uri, "warehouse": catalog.warehouse},
        "table": {"name": TABLE},
        "checkpointLocation": str(folder / "checkpoint"),
        "triggerSeconds": 1,
        "master": "local[2]",
    }
    for key, value in overrides.items():
        config[key] = (
            {**config[key], **value} if isinstance(value, dict) and isinstance(config.get(key), dict) else value
        )
    return config


def create_stream(kinesis: Any, name: str, shards: int) -> None:
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=name)


def client(api: ApiServer, role: str = "pseudonymize") -> PseudonymizationClient:
    return PseudonymizationClient(ClientConfig(url=api.url, api_key=ApiKeySource(env=None, file=api.key_files[role])))


def rows(catalog: CatalogConfig, table: str = TABLE) -> int:
    return read_table(catalog, table).num_rows


def assert_exactly(catalog: CatalogConfig, api: ApiServer, numbers: range) -> None:
    """Every event once, none twice, each VIN replaced by exactly the API's pseudonym."""
    table = read_table(catalog, TABLE)
    assert sorted(table.column("n").to_pylist()) == list(numbers)
    vins = [f"SENTINELVIN{n % 3000:06d}" for n in table.column("n").to_pylist()]
    assert table.column("vin").to_pylist() == client(api).pseudonymize("vin", vins)
    assert table.column("kinesis_sequence_number").null_count == 0


def settle(job: StreamJob, catalog: CatalogConfig, expected: int, timeout: float = 180) -> None:
    """Waits for `expected` rows and then for the job to go quiet (no batch for 3 triggers), so a
    duplicate would have shown up. (Spark runs no batch while the stream has nothing new.)"""
    job.wait_for(lambda: rows(catalog) >= expected, timeout, f"{expected} rows")
    quiet_since, seen = time.monotonic(), len(job.batches())
    while time.monotonic() - quiet_since < 3:
        if len(job.batches()) != seen:
            quiet_since, seen = time.monotonic(), len(job.batches())
        time.sleep(0.1)


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    return tmp_path


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# Four batches of 2 x 1,000 records: the kill lands after the first and before the last.
KILLED_RECORDS = 8_000


def test_exactly_once_through_a_sigkill_and_a_restart(
    api: ApiServer, kinesis: Any, moto_endpoint: str, catalog: CatalogConfig, folder: Path
) -> None:
    create_stream(kinesis, "killed", 2)
    put_records(kinesis, "killed", (event(n) for n in range(KILLED_RECORDS)))
    config = job_config(api, catalog, moto_endpoint, "killed", folder)

    with running(StreamJob(config, folder)) as first:
        first.wait_for(lambda: any(b["appended"]["rows"] for b in first.batches()), 180, "a first committed batch")
        time.sleep(0.4)  # into the next batch
        first.kill()
    written = rows(catalog)
    assert 0 < written < KILLED_RECORDS, "the kill should land mid-way"

    with running(StreamJob(config, folder)) as second:
        settle(second, catalog, KILLED_RECORDS)
        assert second.terminate() == 0
        assert second.events[-1]["event"] == "stopped"
    assert_exactly(catalog, api, range(KILLED_RECORDS))


def test_a_shard_split_while_records_flow_loses_and_repeats_nothing(
    api: ApiServer, kinesis: Any, moto_endpoint: str, catalog: CatalogConfig, folder: Path
) -> None:
    create_stream(kinesis, "resharded", 1)
    put_records(kinesis, "resharded", (event(n) for n in range(3000)))
    with running(StreamJob(job_config(api, catalog, moto_endpoint, "resharded", folder), folder)) as job:
        job.wait_for(lambda: any(b["appended"]["rows"] for b in job.batches()), 180, "a first committed batch")
        shard = kinesis.list_shards(StreamName="resharded")["Shards"][0]
        low, high = int(shard["HashKeyRange"]["StartingHashKey"]), int(shard["HashKeyRange"]["EndingHashKey"])
        kinesis.split_shard(
            StreamName="resharded", ShardToSplit=shard["ShardId"], NewStartingHashKey=str((low + high) // 2)
        )
        put_records(kinesis, "resharded", (event(n) for n in range(3000, 6000)))
        settle(job, catalog, 6000)
    assert len(kinesis.list_shards(StreamName="resharded")["Shards"]) == 3
    assert_exactly(catalog, api, range(6000))


POISON: list[tuple[bytes, str, str]] = [
    (b"SENTINEL-POISON-1 is not json", "not-json", "the record is not UTF-8 JSON"),
    (b"\xff\xfeSENTINEL-POISON-2", "not-json", "the record is not UTF-8 JSON"),
    (b'["SENTINEL-POISON-3"]', "not-object", "the record is JSON but not an object"),
    (b'{"n": 90001, "dept_id": 1, "note": "SENTINEL-POISON-4"}', "missing-field", "field vin: required"),
    (b'{"n": 90002, "vin": 12345, "note": "SENTINEL-POISON-5"}', "wrong-type", "field vin: expected a string"),
    (b'{"n": "90003", "vin": "SENTINEL-POISON-6"}', "wrong-type", "field n: expected a 64-bit integer"),
    (
        b'{"n": 90004, "vin": "SENTINEL-POISON-7", "example_ts": "yesterday"}',
        "wrong-type",
        "field example_ts: expected an ISO 8601 timestamp string",
    ),
    (
        b'{"n": 90005, "vin": "SENTINEL-POISON-8", "dept_id": 4294967296}',
        "wrong-type",
        "field dept_id: out of range for int",
    ),
    (
        json.dumps({"n": 90006, "vin": "SENTINEL-POISON-9" * 100}).encode(),
        "refused-by-api",
        "field vin: refused by the pseudonymization API (is longer than 1024 bytes)",
    ),
    (b"SENTINEL-POISON-10 " * 200, "not-json", "the record is not UTF-8 JSON"),
]


def test_poison_records_go_to_the_dead_letter_table_encrypted_with_reasons(
    api: ApiServer, kinesis: Any, moto_endpoint: str, catalog: CatalogConfig, folder: Path
) -> None:
    create_stream(kinesis, "poisoned", 2)
    records = [event(n) for n in range(1000)]
    for i, (poison, _, _) in enumerate(POISON):
        records.insert(97 * (i + 1), poison)
    put_records(kinesis, "poisoned", records)
    with running(StreamJob(job_config(api, catalog, moto_endpoint, "poisoned", folder), folder)) as job:
        job.wait_for(lambda: rows(catalog, DEAD) >= len(POISON), 180, "every poison record in the dead-letter table")
        settle(job, catalog, 1000)
        assert job.terminate() == 0
    assert_exactly(catalog, api, range(1000))

    dead = read_table(catalog, DEAD).sort_by("sequence_number").to_pylist()
    assert len(dead) == len(POISON)
    steward = client(api, "reidentify")
    by_record = {decrypt_dead_letter(steward, "dead_letter", row["record_encrypted"]): row for row in dead}
    assert set(by_record) == {poison for poison, _, _ in POISON}
    for poison, code, reason in POISON:
        row = by_record[poison]
        assert (row["reason_code"], row["reason"]) == (code, reason)
        assert row["record_bytes"] == len(poison)
        assert row["stream_name"] == "poisoned" and row["sequence_number"] and row["arrival_time"] is not None
    # Randomized encryption: the same record twice would not look equal, and no plaintext is kept anywhere.
    assert len({chunk for row in dead for chunk in row["record_encrypted"]}) == sum(
        len(row["record_encrypted"]) for row in dead
    )
    for path in Path(catalog.warehouse).rglob("*"):
        if path.is_file():
            assert b"SENTINEL" not in path.read_bytes(), f"plaintext in {path.name}"
    assert "SENTINEL" not in json.dumps(job.events) + job.stderr


def test_an_api_outage_is_retried_and_the_job_catches_up(
    api: ApiServer, kinesis: Any, moto_endpoint: str, catalog: CatalogConfig, folder: Path
) -> None:
    create_stream(kinesis, "outage", 2)
    put_records(kinesis, "outage", (event(n) for n in range(2000)))
    with FaultProxy(api.url) as proxy:
        config = job_config(api, catalog, moto_endpoint, "outage", folder, api={"url": proxy.url, "maxRetries": 12})
        with running(StreamJob(config, folder)) as job:
            job.wait_for(lambda: any(b["appended"]["rows"] for b in job.batches()), 180, "a first committed batch")
            proxy.fail_all_posts = True
            put_records(kinesis, "outage", (event(n) for n in range(2000, 4000)))
            # The outage lasts until the job has been refused several times (it retries with backoff).
            wait_until(lambda: proxy.counts["503"] >= 4, 120, "the job's calls to fail during the outage")
            proxy.fail_all_posts = False
            settle(job, catalog, 4000)
    assert proxy.counts["503"] > 0
    assert_exactly(catalog, api, range(4000))


def test_an_api_gone_for_longer_than_the_retries_stops_the_job_and_a_restart_loses_nothing(
    api: ApiServer, kinesis: Any, moto_endpoint: str, catalog: CatalogConfig, folder: Path
) -> None:
    create_stream(kinesis, "gone", 1)
    put_records(kinesis, "gone", (event(n) for n in range(500)))
    with FaultProxy(api.url) as proxy:
        config = job_config(api, catalog, moto_endpoint, "gone", folder, api={"url": proxy.url, "maxRetries": 1})
        with running(StreamJob(config, folder)) as job:
            job.wait_for(lambda: rows(catalog) >= 500, 180, "the first 500 rows")
            proxy.fail_all_posts = True
            put_records(kinesis, "gone", (event(n) for n in range(500, 1000)))
            assert job.wait(120) == 1
        assert "/v1/pseudonymize: gave up after 2 attempts; last: HTTP 503" in job.stderr
        assert "a restart resumes from the checkpoint" in job.stderr
        assert rows(catalog) == 500
        proxy.fail_all_posts = False
        with running(StreamJob(config, folder)) as again:
            settle(again, catalog, 1000)
    assert_exactly(catalog, api, range(1000))


@pytest.fixture(scope="module")
def strict_moto() -> Iterator[str]:
    """A second moto that checks credentials like AWS (unknown access keys are refused)."""
    with moto_server({"INITIAL_NO_AUTH_ACTION_COUNT": "0"}) as endpoint:
        yield endpoint


def test_refuses_to_start_with_a_clear_message(
    api: ApiServer,
    kinesis: Any,
    moto_endpoint: str,
    strict_moto: str,
    catalog: CatalogConfig,
    folder: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    create_stream(kinesis, "exists", 1)
    cases = [
        (
            job_config(api, catalog, moto_endpoint, "no-such-stream", folder),
            "cannot start: source.streamName: no stream no-such-stream in eu-west-1",
        ),
        (
            job_config(api, catalog, strict_moto, "exists", folder),
            "cannot start: the AWS credentials were refused for stream exists",
        ),
        (
            job_config(api, catalog, "http://127.0.0.1:9", "exists", folder),
            "cannot start: cannot reach the Kinesis endpoint for eu-west-1",
        ),
        (
            job_config(api, catalog, moto_endpoint, "exists", folder, api={"url": "http://127.0.0.1:9"}),
            "cannot start: api.url: the API at http://127.0.0.1:9 is not reachable",
        ),
        (
            job_config(api, catalog, moto_endpoint, "exists", folder, columns={"vin": "no_such_context"}),
            "cannot start: api: cannot pseudonymize context no_such_context: /v1/pseudonymize: HTTP 400",
        ),
        (
            job_config(api, catalog, moto_endpoint, "exists", folder, api={"apiKeyFile": api.key_files["reidentify"]}),
            "cannot start: api: cannot pseudonymize context vin: /v1/pseudonymize: HTTP 403",
        ),
    ]
    for config, message in cases:
        path = folder / "config.json"
        path.write_text(json.dumps(config))
        assert main(["--config", str(path)]) == 2
        assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"source": {"streamName": ""}}, "source.streamName: required"),
        (
            {"source": {"startingPosition": "EARLIEST"}},
            "source.startingPosition: must be TRIM_HORIZON, LATEST or AT_TIMESTAMP",
        ),
        (
            {"source": {"startingPosition": "AT_TIMESTAMP"}},
            "source.startingTimestamp: AT_TIMESTAMP needs an ISO 8601 timestamp",
        ),
        ({"source": {"connector": "kcl"}}, "source.connector: must be python or aws-kinesis"),
        ({"schema": {"fields": {"vin": "varchar"}}}, "schema.fields.vin: must be one of string, int"),
        ({"schema": {"fields": {"vin": "string"}, "required": ["n"]}}, "schema.required: 'n' is not a declared field"),
        (
            {"schema": {"fields": {"vin": "string", "kinesis_x": "string"}}},
            "schema.fields.kinesis_x: names starting with kinesis_",
        ),
        ({"columns": {"dept_id": "vin"}}, "columns.dept_id: must be a declared string field"),
        ({"table": {"partitionBy": ["vin"]}}, "table.partitionBy: do not partition by a pseudonymized column"),
        ({"deadLetter": {"table": TABLE}}, "deadLetter.table: must differ from table.name"),
        ({"deadLetter": {"chunkBytes": 1000}}, "deadLetter.chunkBytes: must be a multiple of 3"),
        ({"checkpointLocation": ""}, "checkpointLocation: required"),
        ({"triggerSeconds": 0}, "triggerSeconds: must be between 0.1 and 3600"),
        ({"triggerSeconds": True}, "triggerSeconds: must be of type int or float"),
        ({"api": {"url": ""}}, "api.url: required"),
    ],
)
def test_configuration_errors_name_the_key(
    api: ApiServer,
    catalog: CatalogConfig,
    folder: Path,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, Any],
    message: str,
) -> None:
    config = job_config(api, catalog, "http://127.0.0.1:9", "s", folder)
    for key, value in change.items():
        config[key] = (
            {**config.get(key, {}), **value} if isinstance(value, dict) and key not in ("columns", "schema") else value
        )
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    assert main(["--config", str(path)]) == 2
    assert f"configuration: {message}" in capsys.readouterr().err


def test_dead_letter_chunks_fit_the_api_limit_and_decrypt_back(api: ApiServer) -> None:
    processor = RecordProcessor(
        DeclaredSchema({"vin": "string"}, frozenset({"vin"})),
        {"vin": "vin"},
        ClientConfig(url=api.url, api_key=ApiKeySource(env=None, file=api.key_files["pseudonymize"])),
        DeadLetterConfig(),
    )
    big = b"x" * 100_000
    batch = pa.record_batch(
        {
            "data": pa.array([big, b'{"vin": "A"}', b""], pa.binary()),
            "sequenceNumber": ["1", "2", "3"],
            "approximateArrivalTimestamp": pa.array([None, None, None], pa.timestamp("us")),
        }
    )
    out = processor.process(batch, client(api)).to_pylist()
    assert [row["dead_letter_reason_code"] for row in out] == ["not-json", None, "not-json"]
    assert len(out[0]["dead_letter_record"]) == -(-100_000 // 768)
    assert decrypt_dead_letter(client(api, "reidentify"), "dead_letter", out[0]["dead_letter_record"]) == big
    assert decrypt_dead_letter(client(api, "reidentify"), "dead_letter", out[2]["dead_letter_record"]) == b""
    assert out[1]["vin"] == client(api).pseudonymize("vin", ["A"])[0]
    assert pc.sum(pa.array([row["dead_letter_record_bytes"] or 0 for row in out])).as_py() == 100_000
