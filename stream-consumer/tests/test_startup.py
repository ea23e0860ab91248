"""The streaming job's start-up failures are configuration errors (exit 2, the key and the file named), found
before Spark starts and before any batch: an endpoint that is not a URL, a missing API key file. The example
configuration the README runs (examples/stream.json) parses as it ships."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from spark_udfs.jobs.config import read_json
from spark_udfs.jobs.session import CatalogConfig
from stream_consumer.config import parse_config
from stream_consumer.job import main
from test_support import ROOT
from test_support.servers import ApiServer

from .test_job import create_stream, job_config


@pytest.mark.parametrize(
    "endpoint", ["http://127.0.0.1:5000 (local endpoints only)", "127.0.0.1:5000", "ftp://127.0.0.1", "http://"]
)
def test_an_endpoint_that_is_not_a_url_is_a_configuration_error(
    api: ApiServer, catalog: CatalogConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str], endpoint: str
) -> None:
    path = tmp_path / "stream.json"
    path.write_text(json.dumps(job_config(api, catalog, endpoint, "vehicles", tmp_path)))
    assert main(["--config", str(path)]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("configuration: source.endpointUrl: must be a URL such as http://127.0.0.1:5000")
    assert str(path) in error


def test_a_missing_api_key_file_stops_the_start_naming_the_key_and_the_file(
    api: ApiServer,
    kinesis: Any,
    moto_endpoint: str,
    catalog: CatalogConfig,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    create_stream(kinesis, "startup-key", 1)
    missing = tmp_path / "pseudonymize.key"
    config = job_config(api, catalog, moto_endpoint, "startup-key", tmp_path, api={"apiKeyFile": str(missing)})
    path = tmp_path / "stream.json"
    path.write_text(json.dumps(config))
    assert main(["--config", str(path)]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == f"cannot start: api.apiKeyFile: {missing} does not exist (configuration {path})"
    assert not (tmp_path / "checkpoint").exists()  # no batch, not even a query


def test_the_example_configuration_parses_with_a_url_endpoint() -> None:
    config = parse_config(read_json(str(ROOT / "examples" / "stream.json")))
    # npm run local-stack's default endpoint, and the key file the README's apikeys step writes.
    assert config.source.endpoint_url == "http://127.0.0.1:5000"
    assert config.api.api_key.file == "data/api-keys/spark.key"


def test_a_checkpoint_or_catalog_folder_that_cannot_be_made_stops_the_start_naming_the_key(
    api: ApiServer,
    kinesis: Any,
    moto_endpoint: str,
    catalog: CatalogConfig,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    create_stream(kinesis, "startup-folders", 1)
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a folder")
    cases = [
        ({"checkpointLocation": str(in_the_way / "checkpoint")}, "cannot start: checkpointLocation: cannot create"),
        ({"catalog": {"uri": str(in_the_way / "catalog.db")}}, "cannot start: catalog.uri: cannot create the folder"),
    ]
    for change, message in cases:
        config = {**job_config(api, catalog, moto_endpoint, "startup-folders", tmp_path), **change}
        path = tmp_path / "stream.json"
        path.write_text(json.dumps(config))
        assert main(["--config", str(path)]) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1].startswith(message)
