"""The streaming job: Kinesis -> pseudonymize through the API (spark-udfs' client) -> Iceberg, exactly once,
with a dead-letter table. The command line is `stream-consumer` (stream_consumer.job:main)."""
