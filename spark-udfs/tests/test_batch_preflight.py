"""What the README promises of the batch job's start: the API key, the input and the table name are checked
before Spark starts, errors name the key and exit 2; without --master the workers run the job's own interpreter;
a failure's last line names its cause in one sentence. Run as a process, the way a person runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spark_udfs.jobs.session import CatalogConfig

from .conftest import Api

ROWS = 300


@pytest.fixture(scope="module")
def tiny_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("preflight-input") / "vehicles.parquet"
    pq.write_table(pa.table({"vin": [f"PREFLIGHTVIN{i % 50:04d}" for i in range(ROWS)], "n": list(range(ROWS))}), path)
    return path


def job_config(api: Api, warehouse: CatalogConfig, source: Path, table: str) -> dict[str, Any]:
    """No master: as a newcomer runs it, Spark decides (local[*] outside spark-submit)."""
    return {
        "input": {"path": str(source)},
        "columns": {"vin": "vin"},
        "api": {"url": api.url, "apiKeyFile": api.pseudonymize_key_file, "batchSize": 100},
        "catalog": {"name": warehouse.name, "type": "jdbc", "uri": warehouse.uri, "warehouse": warehouse.warehouse},
        "table": {"name": f"local.analytics.{table}"},
    }


def run_job(config: dict[str, Any], folder: Path, *flags: str, **environment: str) -> subprocess.CompletedProcess[str]:
    path = folder / "job.json"
    path.write_text(json.dumps(config))
    env = {key: value for key, value in os.environ.items() if key != "PYSPARK_PYTHON"} | environment
    return subprocess.run(
        [sys.executable, "-m", "spark_udfs.jobs.batch", "--config", str(path), *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("change", "flags", "message"),
    [
        ({"api": {"apiKeyFile": "no/such.key"}}, (), "api.apiKeyFile: no/such.key (relative to "),
        ({"api": {"apiKeyFile": "FOLDER"}}, (), "is a folder, not a key file"),
        ({"api": {"apiKeyFile": "EMPTY"}}, (), "is empty"),
        ({"api": {"apiKeyFile": None, "apiKeyEnv": "PREFLIGHT_UNSET_KEY"}}, (), "api.apiKeyEnv: PREFLIGHT_UNSET_KEY"),
        ({"input": {"path": "no/such/input.parquet"}}, (), "input.path: no/such/input.parquet does not exist"),
        ({}, ("--table", "local.crm"), "table.name: must be local.<namespace>.<table>"),
        ({"catalog": {"uri": "FILE/catalog.db"}}, (), "catalog.uri: cannot create the folder"),
    ],
)
def test_is_refused_before_spark_starts_naming_the_key(
    api: Api,
    warehouse: CatalogConfig,
    tiny_input: Path,
    tmp_path: Path,
    change: dict[str, dict[str, Any]],
    flags: tuple[str, ...],
    message: str,
) -> None:
    (tmp_path / "FOLDER").mkdir()
    (tmp_path / "EMPTY").write_text("\n")
    (tmp_path / "FILE").write_text("a file where a folder belongs")
    config = job_config(api, warehouse, tiny_input, "never_preflight")
    for section, values in change.items():
        config[section] = {**config[section], **values}
        for key, value in values.items():
            if isinstance(value, str) and value.split("/")[0] in ("FOLDER", "EMPTY", "FILE"):
                config[section][key] = str(tmp_path / value)
    # Spark cannot start at all here: a refusal that comes out is one made before it.
    finished = run_job(config, tmp_path, *flags, SPARK_HOME=str(tmp_path / "no-spark"))
    assert finished.returncode == 2, finished.stderr
    assert message in last_line(finished.stderr)
    assert last_line(finished.stderr).startswith("configuration: ")
    assert "Traceback" not in finished.stderr and "PREFLIGHTVIN" not in finished.stderr


def test_without_master_the_workers_run_the_jobs_own_interpreter(
    api: Api, warehouse: CatalogConfig, tiny_input: Path, tmp_path: Path
) -> None:
    finished = run_job(job_config(api, warehouse, tiny_input, "no_master"), tmp_path)
    assert finished.returncode == 0, finished.stderr[-3000:]
    summary = json.loads(last_line(finished.stdout))
    assert summary["rows"] == ROWS and summary["created"] is True


def test_a_failure_in_the_workers_ends_with_its_cause_in_one_line(
    api: Api, warehouse: CatalogConfig, tiny_input: Path, tmp_path: Path
) -> None:
    """Workers on a Python without the package (what the default used to be): the last line says so, not just
    the name of Spark's wrapper exception."""
    finished = run_job(
        job_config(api, warehouse, tiny_input, "never_workers"), tmp_path, PYSPARK_PYTHON="/usr/bin/python3"
    )
    assert finished.returncode == 1
    line = last_line(finished.stderr)
    assert line.startswith("the job failed and committed nothing: ")
    assert line != "the job failed and committed nothing: PythonException"
    assert "ModuleNotFoundError: No module named" in line, line
    assert "PREFLIGHTVIN" not in finished.stderr
