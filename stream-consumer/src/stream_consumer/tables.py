"""The job's two Iceberg tables: the rows and the dead letters. Created when missing (format v2, no column
statistics of pseudonyms or encrypted records in manifests), checked when present."""

from __future__ import annotations

from typing import Any

from spark_udfs.iceberg import ensure_table_properties, sql_properties

from .config import StreamJobConfig
from .preflight import PreflightError
from .records import FieldType

SQL_TYPES: dict[FieldType, str] = {
    "string": "string",
    "int": "int",
    "long": "bigint",
    "double": "double",
    "boolean": "boolean",
    "timestamp": "timestamp",
    "date": "date",
}

#: The dead-letter table: where a record was, why it was refused, and the record encrypted (never plaintext).
DEAD_LETTER_COLUMNS = {
    "stream_name": "string",
    "sequence_number": "string",
    "arrival_time": "timestamp",
    "reason_code": "string",
    "reason": "string",
    "record_encrypted": "array<string>",
    "record_bytes": "int",
    "batch_id": "bigint",
    "failed_at": "timestamp",
}


def create_tables(spark: Any, config: StreamJobConfig) -> None:
    """Creates the table and the dead-letter table when missing; checks an existing table's columns."""
    columns = {name: SQL_TYPES[kind] for name, kind in config.schema.fields.items()} | {
        "kinesis_sequence_number": "string",
        "kinesis_arrival_time": "timestamp",
    }
    metrics_off = {f"write.metadata.metrics.column.{name}": "none" for name in config.columns}
    for table, wanted, properties, partition in (
        (config.table, columns, metrics_off, config.partition_by),
        (config.dead_letter_table, DEAD_LETTER_COLUMNS, {"write.metadata.metrics.column.record_encrypted": "none"}, ()),
    ):
        spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {table.rsplit('.', 1)[0]}")
        ddl = ", ".join(f"`{name}` {kind}" for name, kind in wanted.items())
        partitioned = f" PARTITIONED BY ({', '.join(partition)})" if partition else ""
        all_properties = sql_properties({"format-version": "2", **properties})
        spark.sql(
            f"CREATE TABLE IF NOT EXISTS {table} ({ddl}) USING iceberg{partitioned} TBLPROPERTIES ({all_properties})"
        )
        existing = {f.name: f.dataType.simpleString() for f in spark.table(table).schema.fields}
        for name, kind in wanted.items():
            if name not in existing:
                raise PreflightError(
                    f"table {table} has no column {name}; add it (ALTER TABLE ... ADD COLUMN) or use a new table"
                )
            if existing[name] != kind:
                raise PreflightError(f"table {table}: column {name} is {existing[name]}, the job writes {kind}")
        ensure_table_properties(spark, table, properties)
