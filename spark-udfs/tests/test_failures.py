"""root_cause: the message of a value-free error out of Spark's failure text, for error classes of any package
(spark-udfs names none of the other packages' classes: subclasses register themselves)."""

from __future__ import annotations

from spark_udfs.errors import ValueFreeError
from spark_udfs.jobs.failures import root_cause


class ShardGone(ValueFreeError):
    """Stands for an error class of another package (stream-consumer's KinesisSourceError is one)."""


def test_finds_the_message_of_a_subclass_defined_anywhere() -> None:
    spark_text = (
        "org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage 3.0 failed\n"
        '  File "/worker.py", line 9, in read\n'
        "tests.test_failures.ShardGone: cannot list the shards of stream vehicles: ResourceNotFoundException\n"
        "\tat org.apache.spark.api.python.BasePythonRunner.handlePythonException"
    )
    expected = "cannot list the shards of stream vehicles: ResourceNotFoundException"
    assert root_cause(RuntimeError(spark_text)) == expected


def test_other_errors_show_only_their_type() -> None:
    assert root_cause(RuntimeError("Py4JJavaError: something with a value-123 inside")) == "RuntimeError"
