"""Causes, not Java exception names. A configuration that cannot fit the input (a column the data lacks, a day
transform of a string column) is refused once Spark has read the schema and before anything is created or written,
exit 2 naming the key; a failure inside Spark ends with the JVM's innermost message, never a value (a sentinel
value in a cast error, a real Py4JJavaError and a captured Spark error prove it)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from py4j.protocol import Py4JJavaError
from pyspark.sql import SparkSession

from spark_udfs.jobs.batch import main, parse_config, run
from spark_udfs.jobs.failures import root_cause, without_literals
from spark_udfs.jobs.session import CatalogConfig

from .conftest import Api

SENTINEL = "SENTINELVALUE7F3A9Q"
ROWS = 120


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """As the sample's generator writes it: example_ts a string; plus a date, a double and a struct column."""
    path = tmp_path_factory.mktemp("causes-input") / "vehicles.parquet"
    day = dt.date(2026, 3, 1)
    table = pa.table(
        {
            "dept_id": pa.array([i % 5 for i in range(ROWS)], pa.int32()),
            "vin": pa.array([f"CAUSESVIN{i % 30:05d}" for i in range(ROWS)]),
            "example_ts": pa.array([f"2026-03-01 08:{i % 60:02d}:00" for i in range(ROWS)]),
            "sold_on": pa.array([day + dt.timedelta(days=i % 9) for i in range(ROWS)], pa.date32()),
            "score": pa.array([i / 7 for i in range(ROWS)], pa.float64()),
            "owner": pa.array([{"region": "eu"} for _ in range(ROWS)]),
        }
    )
    pq.write_table(table, path)
    return path


def job(api: Api, warehouse: CatalogConfig, source: Path, name: str, **settings: Any) -> dict[str, Any]:
    table_settings = settings.pop("table", {})
    return {
        "input": {"path": str(source)},
        "columns": {"vin": "vin"},
        "api": {"url": api.url, "apiKeyFile": api.pseudonymize_key_file, "batchSize": 50},
        "catalog": {"name": warehouse.name, "type": "jdbc", "uri": warehouse.uri, "warehouse": warehouse.warehouse},
        "table": {"name": f"local.causes.{name}", **table_settings},
        "master": "local[2]",
        **settings,
    }


def run_main(config: dict[str, Any], folder: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = folder / "job.json"
    path.write_text(json.dumps(config))
    code = main(["--config", str(path)])
    return code, capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"table": {"partitionBy": ["days(example_ts)"]}},
            "table.partitionBy[0]: days(example_ts) needs a date or timestamp column; example_ts is string",
        ),
        (
            {"table": {"partitionBy": ["dept_id", "hours(sold_on)"]}},
            "table.partitionBy[1]: hours(sold_on) needs a timestamp column; sold_on is date",
        ),
        (
            {"table": {"partitionBy": ["bucket(8, score)"]}},
            "table.partitionBy[0]: bucket(8, score) needs a int, long, decimal, date, timestamp, string or binary "
            "column; score is double",
        ),
        (
            {"table": {"partitionBy": ["truncate(4, sold_on)"]}},
            "table.partitionBy[0]: truncate(4, sold_on) needs a int, long, decimal, string or binary column; "
            "sold_on is date",
        ),
        ({"table": {"partitionBy": ["owner"]}}, "table.partitionBy[0]: owner needs a column of a primitive type"),
        ({"table": {"partitionBy": ["months(sold)"]}}, "table.partitionBy[0]: months(sold): the output has no column"),
        (
            {"table": {"sortBy": ["dept_id", "event_ts"]}},
            "table.sortBy[1]: the output has no column event_ts (it has: ",
        ),
        ({"columns": {"vin": "vin", "email": "email"}}, "columns.email: the input has no column email (it has: "),
        ({"columns": {"dept_id": "vin"}}, "columns.dept_id: dept_id is int, not string: cast it first"),
        (
            {"columns": {"vin": {"context": "vin", "as": "score"}}},
            "columns.vin.as: the input already has a column score",
        ),
        # The output names count: sortBy on the renamed column is fine, on the input's name it is not.
        (
            {"columns": {"vin": {"context": "vin", "as": "s_vin"}}, "table": {"sortBy": ["vin"]}},
            "table.sortBy[0]: the output has no column vin",
        ),
    ],
)
def test_a_configuration_that_cannot_fit_the_input_is_refused_before_anything_is_written(
    spark: SparkSession,
    api: Api,
    warehouse: CatalogConfig,
    dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    settings: dict[str, Any],
    message: str,
) -> None:
    code, line = run_main(job(api, warehouse, dataset, "refused", **settings), tmp_path, capsys)
    assert code == 2
    assert line.startswith(f"configuration: {message}")
    assert "CAUSESVIN" not in line and "2026-03-01" not in line
    assert not spark.catalog.tableExists("local.causes.refused")


def test_the_sample_datasets_settings_pass_once_the_types_fit(
    spark: SparkSession, api: Api, warehouse: CatalogConfig, dataset: Path
) -> None:
    """The same data with days() on the date column and the sort on a column it has: written."""
    config = job(
        api,
        warehouse,
        dataset,
        "fitting",
        table={"partitionBy": ["days(sold_on)", "bucket(4, dept_id)"], "sortBy": ["example_ts"]},
    )
    assert run(parse_config(config))["rows"] == ROWS
    assert spark.table("local.causes.fitting").count() == ROWS


def test_a_failure_inside_spark_ends_with_the_jvms_own_message(
    spark: SparkSession,
    api: Api,
    warehouse: CatalogConfig,
    dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An append the existing table cannot take (its schema has fewer columns) fails in Spark's analysis: the line
    says why in Spark's words, naming columns and the table, not just AnalysisException."""
    narrow = tmp_path / "narrow.parquet"
    pq.write_table(pa.table({"vin": [f"CAUSESVIN{i:05d}" for i in range(10)]}), narrow)
    assert run(parse_config(job(api, warehouse, narrow, "narrow")))["rows"] == 10
    snapshots = spark.sql("SELECT count(*) FROM local.causes.narrow.snapshots").collect()[0][0]
    code, line = run_main(job(api, warehouse, dataset, "narrow"), tmp_path, capsys)
    assert code == 1
    # Spark's own words (an error condition in brackets, then what it means), not just the exception's name.
    assert re.match(r"^the job failed and committed nothing: \w*AnalysisException: \[[A-Z_.]+\] \S+", line), line
    assert "CAUSESVIN" not in line
    assert spark.sql("SELECT count(*) FROM local.causes.narrow.snapshots").collect()[0][0] == snapshots


def test_icebergs_message_comes_out_of_a_py4j_error(spark: SparkSession) -> None:
    """The failure the issue saw as a bare Py4JJavaError: Iceberg refusing a day transform of a string column."""
    with pytest.raises(Exception) as raised:
        spark.sql("CREATE TABLE local.causes.by_string_day (s string) USING iceberg PARTITIONED BY (days(s))")
    assert "Invalid source type string for transform: day" in root_cause(raised.value)


def test_a_value_in_a_jvm_message_is_not_shown(spark: SparkSession) -> None:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    # Java's own messages quote or name their input: only the class is shown. A real Py4JJavaError (an exception
    # PySpark does not convert) and a converted one.
    with pytest.raises(Py4JJavaError) as java_error:
        jvm.java.lang.Class.forName(SENTINEL)
    assert SENTINEL in str(java_error.value)
    assert root_cause(java_error.value) == "ClassNotFoundException (its message is not shown: it may hold data)"
    with pytest.raises(Exception) as converted:
        jvm.java.lang.Integer.parseInt(SENTINEL)
    assert SENTINEL in str(converted.value)
    assert root_cause(converted.value) == "NumberFormatException (its message is not shown: it may hold data)"
    # A Spark error condition whose message quotes the value (an ANSI cast): shown, the literal replaced.
    with pytest.raises(Exception) as cast_error:
        spark.sql(f"SELECT CAST('{SENTINEL}' AS INT) AS n").collect()
    assert SENTINEL in str(cast_error.value)
    shown = root_cause(cast_error.value)
    assert SENTINEL not in shown and "[CAST_INVALID_INPUT]" in shown, shown
    # The same in the text of a failed job: the innermost cause, not a suppressed exception.
    text = (
        "An error occurred while calling o77.sql.\n"
        ": org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage 2.0 failed\n"
        "\tat org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages(DAGScheduler.scala:2898)\n"
        f"Caused by: org.apache.spark.SparkNumberFormatException: [CAST_INVALID_INPUT] The value '{SENTINEL}' of "
        'the type "STRING" cannot be cast to "INT" because it is malformed.\n'
        "\tat org.apache.spark.sql.errors.QueryExecutionErrors$.invalidInputInCastToNumberError(Errors.scala:145)\n"
        f"\tSuppressed: java.lang.IllegalStateException: {SENTINEL}\n"
        "\t\tat org.apache.spark.sql.Dataset.collect(Dataset.scala:1)\n"
    )
    assert root_cause(RuntimeError(text)) == (
        "SparkNumberFormatException: [CAST_INVALID_INPUT] The value '…' of the type '…' cannot be cast to '…' "
        "because it is malformed."
    )
    assert without_literals(f'`vin` is "{SENTINEL}"\nsecond line {SENTINEL}') == "`vin` is '…'"
    # Spark escapes a quote inside a literal: the whole literal goes, not just up to the escaped quote.
    assert without_literals("[CAST_INVALID_INPUT] The value 'O\\'Brien " + SENTINEL + "' cannot be cast") == (
        "[CAST_INVALID_INPUT] The value '…' cannot be cast"
    )
    # A quote left open: where the literal ends is unknown, so the message is not shown at all.
    assert without_literals("The value 'unterminated " + SENTINEL) == ""
