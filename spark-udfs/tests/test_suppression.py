"""Suppression at ingestion through the client and the batch job: once a subject's erasure is filed, re-running
the batch job on the same input leaves the subject's rows out and says how many (or, configured to, fails and
commits nothing); a value is never written as a null in the person's place, and no output names a value. After
the erasure and a lift (the person consents again), the job writes the subject's rows again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

from spark_udfs import ApiKeySource, ClientConfig, PseudonymizationClient, SubjectSuppressed
from spark_udfs.jobs.batch import main, parse_config, run
from spark_udfs.jobs.session import CatalogConfig
from test_support.suppression import ErasureApi, Registered, erasure_api

TABLE = "local.suppression.people"
JANE = "sentinel.jane@example.com"
JANE_VIN = "SENTINELJANEVIN01"
# Row 1 is Jane's, row 3 is her car with someone else's address: both go (a row goes if any column is withheld).
ROWS = [
    (1, JANE, JANE_VIN),
    (2, "sentinel.kept@example.com", "SENTINELKEPTVIN02"),
    (3, "sentinel.other@example.com", JANE_VIN),
    (4, None, "SENTINELNOMAIL004"),
]


def write_dataset(path: Path) -> Path:
    ids, emails, vins = zip(*ROWS, strict=True)
    pq.write_table(pa.table({"id": pa.array(ids, pa.int32()), "email": pa.array(emails), "vin": pa.array(vins)}), path)
    return path


@dataclass(frozen=True)
class Filed:
    api: ErasureApi
    dataset: Path
    #: Jane's pseudonyms as the table got them before her erasure was filed.
    pseudonyms: tuple[str, str]
    snapshots_before: int


@pytest.fixture(scope="module")
def erasure() -> Iterator[ErasureApi]:
    with erasure_api() as api:
        yield api


@pytest.fixture(scope="module")
def filed(erasure: ErasureApi, warehouse: CatalogConfig, tmp_path_factory: pytest.TempPathFactory) -> Filed:
    """The job run once on ROWS (all written), then Jane's erasure filed (email and VIN) and nothing else."""
    dataset = write_dataset(tmp_path_factory.mktemp("suppression") / "people.parquet")
    first = run(parse_config(job(erasure, warehouse, dataset)))
    assert (first["rows"], first["rowsSuppressed"]) == (4, 0)
    email = client(erasure).pseudonymize("email", [JANE])[0]
    vin = client(erasure).pseudonymize("vin", [JANE_VIN])[0]
    erasure.file("DSR-SUPPRESS-1", [("email", JANE), ("vin", JANE_VIN)])
    return Filed(erasure, dataset, (email, vin), snapshots(warehouse))


def job(api: ErasureApi, warehouse: CatalogConfig, dataset: Path, **extra: Any) -> dict[str, Any]:
    return {
        "input": {"path": str(dataset), "format": "parquet"},
        "columns": {"email": "email", "vin": "vin"},
        "api": {"url": api.url, "apiKeyFile": api.server.key_files["pseudonymize"], "batchSize": 2},
        "catalog": {"name": warehouse.name, "type": "jdbc", "uri": warehouse.uri, "warehouse": warehouse.warehouse},
        "table": {"name": TABLE},
        "master": "local[2]",
        **extra,
    }


def client(api: ErasureApi, batch_size: int = 5000) -> PseudonymizationClient:
    key = ApiKeySource(env=None, file=api.server.key_files["pseudonymize"])
    return PseudonymizationClient(ClientConfig(url=api.url, api_key=key, batch_size=batch_size))


def snapshots(warehouse: CatalogConfig) -> int:
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog("local", uri=f"sqlite:///{warehouse.uri}", warehouse=f"file://{warehouse.warehouse}")
    return len(catalog.load_table(TABLE.split(".", 1)[1]).snapshots())


def rows_by_id(spark: SparkSession, table: str = TABLE) -> dict[int, int]:
    spark.sql(f"REFRESH TABLE {table}")
    return {row[0]: row[1] for row in spark.sql(f"SELECT id, count(*) FROM {table} GROUP BY id").collect()}


def run_main(config: dict[str, Any], folder: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    path = folder / "job.json"
    path.write_text(json.dumps(config))
    code = main(["--config", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def assert_value_free(text: str, filed: Filed) -> None:
    for secret in (JANE, JANE_VIN, "sentinel.", "SENTINEL", *filed.pseudonyms):
        assert secret not in text


def test_the_client_withholds_filed_subjects_and_never_returns_a_silent_null(filed: Filed) -> None:
    values = ["sentinel.kept@example.com", JANE, "sentinel.other@example.com", JANE]
    # Chunks of two: the withheld indexes are the call's, not a chunk's.
    answer = client(filed.api, batch_size=2).pseudonymize_unless_erased("email", values)
    assert answer.suppressed == frozenset({1, 3})
    assert [p is None for p in answer.pseudonyms] == [False, True, False, True]
    randomized = client(filed.api).pseudonymize_unless_erased("email", values, deterministic=False)
    assert randomized.suppressed == frozenset({1, 3})
    with pytest.raises(SubjectSuppressed) as raised:
        client(filed.api, batch_size=2).pseudonymize("email", values)
    assert raised.value.suppressed == frozenset({1, 3})
    assert_value_free(str(raised.value), filed)
    assert filed.api.pseudonymize("email", [JANE])["erased"] == [0]


def test_a_rerun_after_filing_leaves_the_subjects_rows_out_and_counts_them(
    spark: SparkSession, filed: Filed, warehouse: CatalogConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(job(filed.api, warehouse, filed.dataset), tmp_path, capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["rows"], summary["rowsSuppressed"]) == (2, 2)
    assert "2 row(s) not written: their subject's erasure was filed" in err
    assert_value_free(out + err, filed)
    # The first run wrote every row (before the filing; deleting them is the erasure job's part); the re-run
    # appended rows 2 and 4 only: none of Jane's, no row with a null in her place.
    assert rows_by_id(spark) == {1: 1, 2: 2, 3: 1, 4: 2}
    appended = spark.sql(f"SELECT email, vin FROM {TABLE} WHERE id IN (2, 4)").collect()
    assert not {value for row in appended for value in row} & set(filed.pseudonyms)
    assert snapshots(warehouse) == filed.snapshots_before + 1


def test_configured_to_fail_the_job_exits_1_naming_the_cause_and_commits_nothing(
    spark: SparkSession, filed: Filed, warehouse: CatalogConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (rows_by_id(spark), snapshots(warehouse))
    code, out, err = run_main(job(filed.api, warehouse, filed.dataset, suppressed="fail"), tmp_path, capsys)
    assert code == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("the job failed and committed nothing: "), err
    assert "erasure filed" in lines[0] and "suppressed setting is fail" in lines[0], err
    assert_value_free(err, filed)
    assert (rows_by_id(spark), snapshots(warehouse)) == before


def test_the_suppressed_key_is_checked_before_spark_starts(filed: Filed, warehouse: CatalogConfig) -> None:
    with pytest.raises(ValueError, match=r"^suppressed: must be drop or fail$"):
        parse_config(job(filed.api, warehouse, filed.dataset, suppressed="skip"))


def test_after_the_erasure_and_a_lift_the_job_writes_the_subject_again(
    spark: SparkSession, warehouse: CatalogConfig, tmp_path: Path
) -> None:
    table = "local.suppression.returning"
    spark.sql(f"CREATE TABLE {table} (id int, email string, vin string) USING iceberg")
    dataset = write_dataset(tmp_path / "people.parquet")
    registered = Registered(warehouse.uri, warehouse.warehouse, {table: {"email": "email", "vin": "vin"}})
    subjects = [("email", JANE), ("vin", JANE_VIN)]
    with erasure_api(registered=registered) as api:
        config = parse_config(job(api, warehouse, dataset, table={"name": table}))
        assert run(config)["rowsSuppressed"] == 0
        api.wait_until_verified(api.file("DSR-RETURNING-1", subjects))
        assert rows_by_id(spark, table) == {2: 1, 4: 1}, "the erasure job deleted rows 1 and 3"
        again = run(config)
        assert (again["rows"], again["rowsSuppressed"]) == (2, 2)
        assert rows_by_id(spark, table) == {2: 2, 4: 2}, "a re-run does not bring the subject back"

        api.lift("CONSENT-RETURNING-1", subjects)
        after = run(config)
        assert (after["rows"], after["rowsSuppressed"]) == (4, 0)
        assert rows_by_id(spark, table) == {1: 1, 2: 3, 3: 1, 4: 3}, "the subject's rows are written again"
