"""Iceberg table maintenance: compaction, manifests, snapshot expiry, old metadata and orphan files (job.py)."""
