"""The batch job's options for teams coming from the AWS sample, on real local Spark and Iceberg against the real
API: an output name per column (`"as"`), a repartition count, randomized pseudonyms (`"deterministic": false`) and
the reidentify mode, which reads a pseudonymized Iceberg table back to its identifiers with a reidentify key."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

from spark_udfs.jobs.batch import JobConfigError, main, parse_config, run
from spark_udfs.jobs.session import CatalogConfig

from .conftest import Api

ROWS = 600
VINS = [f"OPTIONSVIN{i:07d}" for i in range(40)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Parquet file of one row group: without a repartition count Spark reads it in a single task."""
    path = tmp_path_factory.mktemp("options-input") / "vehicles.parquet"
    start = dt.datetime(2026, 2, 1)
    table = pa.table(
        {
            "dept_id": pa.array([i % 7 for i in range(ROWS)], pa.int32()),
            "vin": pa.array([None if i % 97 == 0 else VINS[i % len(VINS)] for i in range(ROWS)]),
            "example_ts": pa.array([start + dt.timedelta(minutes=i) for i in range(ROWS)], pa.timestamp("us")),
        }
    )
    pq.write_table(table, path)
    return path


def job(api: Api, warehouse: CatalogConfig, table: str, **settings: Any) -> dict[str, Any]:
    return {
        "columns": {"vin": {"context": "vin", "as": "s_vin"}},
        "api": {"url": api.url, "apiKeyFile": api.pseudonymize_key_file, "batchSize": 50, "concurrency": 2},
        "catalog": {"name": warehouse.name, "type": "jdbc", "uri": warehouse.uri, "warehouse": warehouse.warehouse},
        "table": {"name": f"local.options.{table}"},
        "master": "local[2]",
        **settings,
    }


def test_renames_the_pseudonymized_column_and_spreads_the_input_over_the_repartition_count(
    spark: SparkSession, api: Api, warehouse: CatalogConfig, dataset: Path
) -> None:
    summary = run(
        parse_config(job(api, warehouse, "renamed", input={"path": str(dataset)}, repartition=3)),
    )
    assert summary["created"] is True and summary["rows"] == ROWS and summary["mode"] == "pseudonymize"
    written = spark.table("local.options.renamed")
    assert written.columns == ["dept_id", "s_vin", "example_ts"]
    expected = dict(
        zip(VINS, api.call("/v1/pseudonymize", {"context": "vin", "values": VINS})["pseudonyms"], strict=True)
    )  # type: ignore[arg-type]
    source = {row.example_ts: row.vin for row in spark.read.parquet(str(dataset)).collect()}
    for row in written.collect():
        original = source[row.example_ts]
        assert row.s_vin == (None if original is None else expected[original])
    # Three tasks wrote the table: one data file each (an unpartitioned table, no sort order).
    assert spark.sql("SELECT count(*) FROM local.options.renamed.files").collect()[0][0] == 3
    properties = {r["key"]: r["value"] for r in spark.sql("SHOW TBLPROPERTIES local.options.renamed").collect()}
    assert properties["write.metadata.metrics.column.s_vin"] == "none"
    assert "write.metadata.metrics.column.vin" not in properties


def test_randomized_pseudonyms_come_back_through_the_reidentify_mode(
    spark: SparkSession, api: Api, warehouse: CatalogConfig, dataset: Path
) -> None:
    run(parse_config(job(api, warehouse, "randomized", input={"path": str(dataset)}, deterministic=False)))
    pseudonymized = spark.table("local.options.randomized")
    values = [row.s_vin for row in pseudonymized.collect() if row.s_vin is not None]
    # Every occurrence has its own pseudonym: 40 VINs, as many distinct pseudonyms as non-null rows.
    assert len(set(values)) == len(values) == ROWS - len(range(0, ROWS, 97))

    back = job(
        api,
        warehouse,
        "reidentified",
        mode="reidentify",
        input={"table": "local.options.randomized"},
        columns={"s_vin": {"context": "vin", "as": "vin"}},
    )
    back["api"]["apiKeyFile"] = api.reidentify_key_file
    summary = run(parse_config(back))
    assert summary["mode"] == "reidentify" and summary["rows"] == ROWS
    restored = {(row.example_ts, row.vin) for row in spark.table("local.options.reidentified").collect()}
    original = {(row.example_ts, row.vin) for row in spark.read.parquet(str(dataset)).collect()}
    assert restored == original


def test_the_reidentify_mode_needs_a_key_with_the_reidentify_role(
    spark: SparkSession, api: Api, warehouse: CatalogConfig, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(parse_config(job(api, warehouse, "to_reidentify", input={"path": str(dataset)})))
    back = job(
        api,
        warehouse,
        "not_reidentified",
        mode="reidentify",
        input={"table": "local.options.to_reidentify"},
        columns={"s_vin": "vin"},
    )
    config = Path(warehouse.warehouse).parent / "reidentify-with-pseudonymize-key.json"
    config.write_text(json.dumps(back))
    assert main(["--config", str(config)]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("the job failed and committed nothing: ") and "OPTIONSVIN" not in error
    assert "forbidden" in error or "reidentify role" in error
    assert not spark.catalog.tableExists("local.options.not_reidentified")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"mode": "reidentify", "deterministic": False}, "deterministic: applies to mode pseudonymize only"),
        ({"mode": "rekey"}, "mode: must be pseudonymize or reidentify"),
        ({"repartition": 0}, "repartition: must be a number of partitions, 1 or more"),
        ({"columns": {"vin": {"context": "vin", "as": "not a name"}}}, "columns.vin.as: must be a plain identifier"),
        ({"columns": {"vin": {"as": "s_vin"}}}, "columns.vin.context: required"),
        ({"columns": {"vin": {"context": "vin", "to": "x"}}}, "columns.vin: takes context and as only"),
        (
            {"columns": {"vin": {"context": "vin", "as": "email"}, "email": "email"}},
            "columns.vin.as: two columns would be written as email",
        ),
        ({"input": {"path": "x.parquet", "table": "local.a.b"}}, "input: give path or table, not both"),
        ({"table": {"name": "local.options.t", "partitionBy": ["s_vin"]}}, "do not partition by a pseudonymized"),
    ],
)
def test_refuses_option_mistakes_naming_the_key(
    api: Api, warehouse: CatalogConfig, settings: dict[str, Any], message: str
) -> None:
    config = job(api, warehouse, "never", input={"path": "x.parquet"})
    config.update(settings)
    with pytest.raises(JobConfigError, match=message.replace(".", r"\.")):
        parse_config(config)


def test_the_aws_sample_example_maps_the_samples_settings() -> None:
    """examples/batch-job-aws-sample.json: the sample's pyspark_batch_pseudo.yaml, key by key (README)."""
    root = Path(__file__).resolve().parents[2]
    config = parse_config(json.loads((root / "examples" / "batch-job-aws-sample.json").read_text()))
    assert config.columns == {"vin": "vin"} and config.rename == {"vin": "s_vin"}
    assert config.repartition == 1 and config.deterministic is True and config.mode == "pseudonymize"
    assert config.api.api_key.secret_id == "SECRET_NAME" and config.api.api_key.region == "YOUR_REGION"
    assert config.catalog.type == "glue" and config.table.name == "glue.blog_batch_db.pseudo_table"
