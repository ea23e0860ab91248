"""Re-keying registered Iceberg tables to the active key version (`rekey-tables`); see job.py."""
