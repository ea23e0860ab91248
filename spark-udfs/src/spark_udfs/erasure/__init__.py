"""Right to be forgotten: the Spark job that erases data subjects from Iceberg tables and proves it."""
