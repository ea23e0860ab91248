"""The Spark session with an Iceberg catalog: locally a JDBC catalog on SQLite plus a warehouse folder
(pyiceberg's SqlCatalog reads the same catalog), on EMR the Glue catalog on S3.

Nothing here points into the repository: an installed wheel behaves as the checkout does. Relative paths are
relative to the working directory, and local Spark gets the Iceberg runtime and SQLite JDBC jars from the
folder the configuration names (`catalog.jars`) or `SPARK_UDFS_JARS` (scripts/setup.sh fetches them into
.cache/jars; the tests and benchmarks pass that)."""

from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass
from typing import Literal

from pyspark.sql import SparkSession

#: The environment variable naming the folder of the jars a local (jdbc) catalog needs.
JARS_ENV = "SPARK_UDFS_JARS"


class SessionConfigError(ValueError):
    """The session cannot be built as configured; the message names the key or variable to set."""


@dataclass(frozen=True)
class CatalogConfig:
    name: str = "local"
    type: Literal["jdbc", "glue"] = "jdbc"
    #: jdbc only: the SQLite database file of the catalog.
    uri: str = os.path.join("data", "iceberg", "catalog.db")
    #: A folder (jdbc) or s3:// prefix (glue) for table data and metadata.
    warehouse: str = os.path.join("data", "iceberg", "warehouse")
    #: jdbc only: the folder of the Iceberg runtime and SQLite JDBC jars; `SPARK_UDFS_JARS` when not set.
    jars: str | None = None

    def jars_folder(self) -> str | None:
        return self.jars or os.environ.get(JARS_ENV) or None


def local_jars(catalog: CatalogConfig) -> list[str]:
    """The Iceberg runtime and SQLite JDBC jars a jdbc catalog needs on local Spark (EMR brings its own for Glue)."""
    if catalog.type != "jdbc":
        return []
    folder = catalog.jars_folder()
    if not folder:
        raise SessionConfigError(
            "catalog.jars: a jdbc catalog needs the folder of the Iceberg runtime and SQLite JDBC jars: "
            f"set catalog.jars or {JARS_ENV} (scripts/setup.sh fetches them into .cache/jars)"
        )
    jars = sorted(glob.glob(os.path.join(folder, "*.jar")))
    if not jars:
        raise SessionConfigError(
            f"catalog.jars: no .jar file in {folder} (catalog.jars or {JARS_ENV}); run scripts/setup.sh"
        )
    return jars


def catalog_settings(catalog: CatalogConfig) -> dict[str, str]:
    prefix = f"spark.sql.catalog.{catalog.name}"
    settings = {
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        prefix: "org.apache.iceberg.spark.SparkCatalog",
    }
    if catalog.type == "jdbc":
        for key, folder in (
            ("catalog.uri", os.path.dirname(os.path.abspath(catalog.uri))),
            ("catalog.warehouse", catalog.warehouse),
        ):
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as error:  # a file in the path, no permission: a setting to fix, not a crash
                raise SessionConfigError(f"{key}: cannot create the folder {folder} ({type(error).__name__})") from None
        settings |= {
            f"{prefix}.type": "jdbc",
            f"{prefix}.uri": f"jdbc:sqlite:{os.path.abspath(catalog.uri)}",
            f"{prefix}.warehouse": f"file://{os.path.abspath(catalog.warehouse)}",
            # The catalog table layout pyiceberg's SqlCatalog reads too.
            f"{prefix}.jdbc.schema-version": "V1",
        }
    else:
        settings |= {
            f"{prefix}.catalog-impl": "org.apache.iceberg.aws.glue.GlueCatalog",
            f"{prefix}.io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
            f"{prefix}.warehouse": catalog.warehouse,
        }
    return settings


def build_session(
    catalog: CatalogConfig, app_name: str = "pseudonymize-batch", master: str | None = None
) -> SparkSession:
    """A session with the catalog configured; locally with the project's jars (EMR provides its own)."""
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    # Spark's Python workers run PYSPARK_PYTHON, else a bare `python3` from PATH, which does not have this
    # package ("No module named 'spark_udfs'" when a job was started without --master). Unless configured
    # (spark-submit sets it from spark.pyspark.python), they use the job's own interpreter.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if master is None or master.startswith("local"):
        # (spark.pyspark.python alone was not honoured for local workers here; the variable is.)
        builder = builder.config("spark.pyspark.python", os.environ["PYSPARK_PYTHON"])
    if (master or "").startswith("local"):
        # Local mode stays on the loopback interface.
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
    jars = local_jars(catalog)
    if jars:
        builder = builder.config("spark.jars", ",".join(jars))
    for key, value in catalog_settings(catalog).items():
        builder = builder.config(key, value)
    # Values are deduplicated per Arrow batch: larger batches send fewer values on low-cardinality columns
    # (measured in load-tests/spark_bench.py). 100,000 rows of a few columns is a few MB per batch.
    builder = builder.config(
        "spark.sql.execution.arrow.maxRecordsPerBatch", os.environ.get("SPARK_UDFS_ARROW_BATCH_ROWS", "100000")
    )
    return builder.config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false").getOrCreate()
