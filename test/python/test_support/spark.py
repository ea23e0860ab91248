"""Spark settings for the test suites and benchmarks, set through the environment so that they reach every
session: the one in the test process and those of the jobs the tests start as child processes (the
streaming job, the erasure job, the service's local erasure runner), none of which the tests configure.

Small-machine settings only; none changes what a job writes or decides (that is what the tests assert):
- `spark.sql.shuffle.partitions` / `spark.default.parallelism` 2: local[2] has two cores; Spark's default of
  200 shuffle partitions makes every aggregation and sort of a tiny micro-batch 200 tasks.
- the serial collector and one JIT level for the short-lived driver JVMs: less CPU spent on JVM start-up
  and GC threads on a shared 2-core machine."""

from __future__ import annotations

import os
import shlex

from . import ROOT

#: Where scripts/setup.sh puts the Iceberg runtime and SQLite JDBC jars.
JARS = ROOT / ".cache" / "jars"

SETTINGS = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.driver.extraJavaOptions": "-XX:+UseSerialGC -XX:TieredStopAtLevel=1",
}


def use_local_jars() -> None:
    """The packages name no folder of this repository: a checkout's sessions find the jars through this variable."""
    os.environ.setdefault("SPARK_UDFS_JARS", str(JARS))


def prepare_environment() -> None:
    """Call before the first Spark session starts (conftest import time). Settings already in the
    environment win: `PYSPARK_SUBMIT_ARGS` set by the caller is left alone."""
    use_local_jars()
    confs = " ".join(f"--conf {shlex.quote(f'{key}={value}')}" for key, value in SETTINGS.items())
    os.environ.setdefault("PYSPARK_SUBMIT_ARGS", f"{confs} pyspark-shell")
