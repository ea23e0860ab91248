"""The batch job's `api.wire` setting, on real local Spark and Iceberg against the real API: "json" makes the
executors send JSON bodies, "arrow" Arrow IPC bodies, "auto" (the default) Arrow against a server that takes it, with
the same pseudonyms in the table every time; a value that is not a format is refused before Spark starts, exit 2
naming the key. The bodies' type is seen by a relay between the executors and the API that records each POST's
content-type (the server's request log does not say which format a request came in)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
from pyspark.sql import SparkSession

from spark_udfs.client import ARROW_STREAM
from spark_udfs.jobs.batch import main, parse_config, run
from spark_udfs.jobs.session import CatalogConfig

from .conftest import Api

ROWS = 300
VINS = [None if i % 50 == 0 else f"WIREVIN{i:010d}" for i in range(ROWS)]


class RecordingRelay:
    """Forwards every request to the API as it is and records the content-type of each POST, by path."""

    def __init__(self, upstream: str) -> None:
        self.posts: list[tuple[str, str]] = []
        lock = threading.Lock()
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._answer(requests.get(upstream + self.path, timeout=30))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                content_type = self.headers.get("content-type", "")
                with lock:
                    relay.posts.append((self.path.split("?", 1)[0], content_type))
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() in ("content-type", "x-api-key", "accept")
                }
                self._answer(requests.post(upstream + self.path, data=body, headers=headers, timeout=30))

            def _answer(self, answer: requests.Response) -> None:
                self.send_response(answer.status_code)
                self.send_header("content-type", answer.headers.get("content-type", "application/json"))
                self.send_header("content-length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def content_types(self, path: str) -> set[str]:
        return {content_type.split(";", 1)[0] for posted, content_type in self.posts if posted == path}


@pytest.fixture()
def relay(api: Api) -> Iterator[RecordingRelay]:
    recording = RecordingRelay(api.url)
    recording.thread.start()
    try:
        yield recording
    finally:
        recording.server.shutdown()
        recording.server.server_close()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wire-input") / "vehicles.parquet"
    pq.write_table(pa.table({"row": pa.array(range(ROWS), pa.int32()), "vin": pa.array(VINS, pa.string())}), path)
    return path


def job(url: str, api: Api, warehouse: CatalogConfig, table: str, dataset: Path, **api_settings: Any) -> dict[str, Any]:
    return {
        "input": {"path": str(dataset)},
        "columns": {"vin": "vin"},
        "api": {"url": url, "apiKeyFile": api.pseudonymize_key_file, "batchSize": 40, "concurrency": 2, **api_settings},
        "catalog": {"name": warehouse.name, "type": "jdbc", "uri": warehouse.uri, "warehouse": warehouse.warehouse},
        "table": {"name": f"local.wire.{table}"},
        "master": "local[2]",
        "repartition": 2,
    }


@pytest.mark.parametrize(
    ("settings", "body_type"),
    [({"wire": "json"}, "application/json"), ({"wire": "arrow"}, ARROW_STREAM), ({}, ARROW_STREAM)],
    ids=["json", "arrow", "auto"],
)
def test_the_wire_setting_decides_the_bodies_the_executors_send(
    spark: SparkSession,
    api: Api,
    warehouse: CatalogConfig,
    dataset: Path,
    relay: RecordingRelay,
    settings: dict[str, str],
    body_type: str,
) -> None:
    name = f"by_{settings.get('wire', 'auto')}"
    config = parse_config(job(relay.url, api, warehouse, name, dataset, **settings))
    assert config.api.wire == settings.get("wire", "auto")
    summary = run(config)
    assert summary["rows"] == ROWS
    # Every value went through the relay, in the configured format only (at least one request per task).
    assert relay.content_types("/v1/pseudonymize") == {body_type}
    assert len([p for p, _ in relay.posts if p == "/v1/pseudonymize"]) >= 2
    present = [vin for vin in VINS if vin is not None]
    pseudonyms = api.call("/v1/pseudonymize", {"context": "vin", "values": present})["pseudonyms"]
    assert isinstance(pseudonyms, list)
    expected = dict(zip(present, pseudonyms, strict=True))
    written = {row.row: row.vin for row in spark.table(f"local.wire.{name}").collect()}
    assert written == {i: (None if vin is None else expected[vin]) for i, vin in enumerate(VINS)}


@pytest.mark.parametrize(
    ("wire", "message"),
    [("xml", "api.wire: must be auto, arrow or json"), (1, "api.wire: must be of type str")],
)
def test_a_wire_that_is_not_a_format_exits_2_naming_the_key(
    api: Api,
    warehouse: CatalogConfig,
    dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    wire: object,
    message: str,
) -> None:
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job(api.url, api, warehouse, "never", dataset, wire=wire)))
    assert main(["--config", str(path)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"configuration: {message}"
