"""The Spark session with an Iceberg catalog: locally a JDBC catalog on SQLite plus a warehouse folder
(pyiceberg's SqlCatalog reads the same catalog), on EMR the Glue catalog on S3."""

from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass
from typing import Literal

from pyspark.sql import SparkSession

PROJECT_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))


@dataclass(frozen=True)
class CatalogConfig:
    name: str = "local"
    type: Literal["jdbc", "glue"] = "jdbc"
    #: jdbc only: the SQLite database file of the catalog.
    uri: str = os.path.join(PROJECT_ROOT, "data", "iceberg", "catalog.db")
    #: A folder (jdbc) or s3:// prefix (glue) for table data and metadata.
    warehouse: str = os.path.join(PROJECT_ROOT, "data", "iceberg", "warehouse")


def local_jars() -> list[str]:
    """The Iceberg runtime and SQLite JDBC jars that scripts/setup.sh fetched with Maven."""
    folder = os.environ.get("SPARK_UDFS_JARS", os.path.join(PROJECT_ROOT, ".cache", "jars"))
    return sorted(glob.glob(os.path.join(folder, "*.jar")))


def catalog_settings(catalog: CatalogConfig) -> dict[str, str]:
    prefix = f"spark.sql.catalog.{catalog.name}"
    settings = {
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        prefix: "org.apache.iceberg.spark.SparkCatalog",
    }
    if catalog.type == "jdbc":
        os.makedirs(os.path.dirname(os.path.abspath(catalog.uri)), exist_ok=True)
        os.makedirs(catalog.warehouse, exist_ok=True)
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


def build_session(catalog: CatalogConfig, app_name: str = "pseudonymize-batch", master: str | None = None) -> SparkSession:
    """A session with the catalog configured; locally with the project's jars (EMR provides its own)."""
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    if (master or "").startswith("local"):
        # Local mode stays on the loopback interface, and its Python workers use this interpreter (the venv).
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
        # (spark.pyspark.python alone was not honoured for local workers here; the variable is.)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = builder.config("spark.pyspark.python", os.environ["PYSPARK_PYTHON"])
    jars = local_jars()
    if jars and catalog.type == "jdbc":
        builder = builder.config("spark.jars", ",".join(jars))
    for key, value in catalog_settings(catalog).items():
        builder = builder.config(key, value)
    # Values are deduplicated per Arrow batch: larger batches send fewer values on low-cardinality columns
    # (measured in load-tests/spark_bench.py). 100,000 rows of a few columns is a few MB per batch.
    builder = builder.config("spark.sql.execution.arrow.maxRecordsPerBatch", os.environ.get("SPARK_UDFS_ARROW_BATCH_ROWS", "100000"))
    return builder.config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false").getOrCreate()
