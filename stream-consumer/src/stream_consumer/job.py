"""The streaming job: Kinesis -> parse against the declared schema -> pseudonymize -> Iceberg, exactly once.

    stream-consumer --config stream.json [--master local[2]]        (or spark-submit .../stream_consumer/job.py)

Each micro-batch (every `triggerSeconds`) is parsed and pseudonymized per partition (mapInArrow, unique
values once per Arrow batch), then appended to the table, and its bad records to the dead-letter table,
each append at most once per batch id (spark_udfs.jobs.markers). The Spark checkpoint holds the stream position:
after a crash or a kill, the job restarts where the last completed batch ended.

Before Spark starts, the configuration is validated (errors name the key), the stream is described (a
missing stream, refused credentials or an unreachable endpoint are reported as such), and the API is asked
to pseudonymize a probe under every context the job uses. While running, API calls retry with backoff; if
the API stays away longer than the retries, the batch fails, nothing of it is committed, and the job
exits 1 saying so. SIGTERM or Ctrl-C stops after the batch in flight (exit 0).

Progress goes to stdout as one JSON line per batch: counts and timings, never values.

The parts: configuration (config.py), pre-flight checks (preflight.py), the tables (tables.py), the
micro-batch loop (loop.py); this module is the command line.
"""

from __future__ import annotations

import argparse
import signal
import sys

from spark_udfs.jobs.config import JobConfigError, read_json
from spark_udfs.jobs.failures import root_cause
from spark_udfs.jobs.session import SessionConfigError

from .config import SourceConfig, StreamJobConfig, parse_config
from .loop import MicroBatchWriter, StopRequest, run, source_reader, start_query
from .preflight import PreflightError, check_checkpoint

__all__ = [
    "MicroBatchWriter",
    "SourceConfig",
    "StopRequest",
    "StreamJobConfig",
    "main",
    "parse_config",
    "run",
    "source_reader",
    "start_query",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Kinesis -> pseudonymize -> Iceberg, exactly once")
    parser.add_argument("--config", required=True, help="job configuration (JSON)")
    parser.add_argument("--master", help="Spark master, e.g. local[2] (spark-submit sets it otherwise)")
    parser.add_argument("--api-key-file", help="overrides api.apiKeyFile")
    args = parser.parse_args(argv)
    try:
        raw = read_json(args.config)
    except JobConfigError as error:
        print(f"config: {error}", file=sys.stderr)
        return 2
    if args.master:
        raw["master"] = args.master
    if args.api_key_file:
        raw.setdefault("api", {})["apiKeyFile"] = args.api_key_file
    try:
        config = parse_config(raw)
    except JobConfigError as error:
        print(f"configuration: {error} (in {args.config})", file=sys.stderr)
        return 2
    stop = StopRequest()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        check_checkpoint(config)
        run(config, stop)
    except (PreflightError, SessionConfigError) as error:
        print(f"cannot start: {error} (configuration {args.config})", file=sys.stderr)
        return 2
    except Exception as error:
        print(
            f"the streaming job stopped: {root_cause(error)}. "
            "The batch in flight was not committed; a restart resumes from the checkpoint.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
