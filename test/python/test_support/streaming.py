"""The streaming job for tests and the benchmark: run the job as its own process group (so a test
can SIGKILL the driver and its JVM together, as a crash would), follow its JSON progress lines, put
records into a stream, and read the tables with pyiceberg (no Spark session in the test process)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa

from spark_udfs.jobs.session import CatalogConfig


class StreamJob:
    """The streaming job in a child process; `events` are its stdout JSON lines, `stderr` its error text."""

    def __init__(self, config: dict[str, Any], folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.config_file = folder / f"job-{time.monotonic_ns()}.json"
        self.config_file.write_text(json.dumps(config))
        self.events: list[dict[str, Any]] = []
        self.stderr = ""
        self.process: subprocess.Popen[str] | None = None
        self._readers: list[threading.Thread] = []

    def start(self) -> StreamJob:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stream_consumer.job", "--config", str(self.config_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: the JVM is killed with it
            env={**os.environ, "PYSPARK_PYTHON": sys.executable},
        )
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        return self

    def _read_stdout(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            with contextlib.suppress(json.JSONDecodeError):  # Spark's own console output
                self.events.append(json.loads(line))

    def _read_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr += line

    def batches(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == "batch"]

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(
                    f"the job exited ({self.process.returncode}) while waiting for {what}: {self.stderr[-2000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; stderr: {self.stderr[-2000:]}")
            time.sleep(0.1)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        code = self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    def kill(self) -> None:
        """SIGKILL to the driver and its JVM at once: no shutdown hook, no chance to finish anything."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.wait(30)

    def terminate(self, timeout: float = 120) -> int:
        """SIGTERM to the driver: a graceful stop after the batch in flight."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)


@contextmanager
def running(job: StreamJob) -> Iterator[StreamJob]:
    """Starts the job; always kills what is left of it."""
    job.start()
    try:
        yield job
    finally:
        job.kill()


def read_table(catalog: CatalogConfig, table: str) -> pa.Table:
    """The table's current rows, read with pyiceberg from the same SQLite catalog; empty if it is not there yet."""
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.exceptions import NoSuchTableError

    sql_catalog = SqlCatalog(catalog.name, uri=f"sqlite:///{catalog.uri}", warehouse=f"file://{catalog.warehouse}")
    try:
        return sql_catalog.load_table(table.split(".", 1)[1]).scan().to_arrow()
    except NoSuchTableError:
        return pa.table({})


def put_records(
    kinesis: Any, stream: str, records: Iterable[bytes], partition_key: Callable[[int], str] = lambda i: f"key-{i % 64}"
) -> int:
    """PutRecords in batches of 500; fails on any per-record failure (moto has none). Returns the count."""
    batch: list[dict[str, Any]] = []
    sent = 0
    for record in records:
        batch.append({"Data": record, "PartitionKey": partition_key(sent + len(batch))})
        if len(batch) == 500:
            sent += _put(kinesis, stream, batch)
            batch = []
    if batch:
        sent += _put(kinesis, stream, batch)
    return sent


def _put(kinesis: Any, stream: str, batch: list[dict[str, Any]]) -> int:
    answer = kinesis.put_records(StreamName=stream, Records=batch)
    if answer["FailedRecordCount"]:
        raise RuntimeError(f"{answer['FailedRecordCount']} records failed")
    return len(batch)
