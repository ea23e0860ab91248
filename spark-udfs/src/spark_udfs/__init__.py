"""Pseudonymize Spark DataFrame columns through the pseudonymization API (keys never reach the cluster)."""

from .client import (
    ApiKeySource,
    ClientConfig,
    PseudonymizationClient,
    PseudonymizationError,
    Pseudonyms,
    SubjectSuppressed,
    ValuesRejected,
    shared_client,
)
from .spark import SparkMetrics, check_columns, pseudonymize, pseudonymize_rows, reidentify

__all__ = [
    "ApiKeySource",
    "ClientConfig",
    "PseudonymizationClient",
    "PseudonymizationError",
    "Pseudonyms",
    "SparkMetrics",
    "SubjectSuppressed",
    "ValuesRejected",
    "check_columns",
    "pseudonymize",
    "pseudonymize_rows",
    "reidentify",
    "shared_client",
]
