"""Configuration pieces every job shares (the API client, the Iceberg catalog, names), validated with
errors that name the key at fault, before Spark starts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from ..client import ApiKeySource, ClientConfig
from ..contracts import common_pattern
from ..iceberg import read_text
from .session import CatalogConfig

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PARTITION = re.compile(r"^(?:(?:years|months|days|hours)\((\w+)\)|(?:bucket|truncate)\(\d+,\s*(\w+)\)|(\w+))$")
#: <catalog>.<namespace>.<table>, three parts, the rule the service's table registry applies (one contract).
TABLE_NAME = re.compile(common_pattern("tableName"))


class JobConfigError(ValueError):
    """The job configuration cannot work; the message names the key."""


def read_json(path: str) -> dict[str, Any]:
    """A JSON object from a local file or an s3:// object (on EMR, configurations and orders live in S3)."""
    try:
        parsed: Any = json.loads(read_text(path))
    except Exception:  # noqa: BLE001 - missing file, S3 error, bad JSON: one message, no content quoted
        raise JobConfigError(f"cannot read {path} as JSON") from None
    if not isinstance(parsed, dict):
        raise JobConfigError(f"{path}: must hold a JSON object")
    return parsed


def get_field(section: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = None) -> Any:
    """`section[key]` (or the default) when it has the expected type; otherwise an error naming `where.key`."""
    value = section.get(key, default)
    # bool is an int in Python: a true/false where a number belongs is still a mistake.
    if value is not None and (not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise JobConfigError(f"{where + '.' if where else ''}{key}: must be of type {names}")
    return value


def section_of(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise JobConfigError(f"{key}: must be an object")
    return value


def parse_api(api: dict[str, Any]) -> ClientConfig:
    url = get_field(api, "url", str, "api")
    if not url:
        raise JobConfigError("api.url: required")
    key = ApiKeySource(
        env=get_field(api, "apiKeyEnv", str, "api", "PSEUDO_API_KEY"),
        file=get_field(api, "apiKeyFile", str, "api"),
        secret_id=get_field(api, "apiKeySecretId", str, "api"),
        region=get_field(api, "region", str, "api"),
    )
    try:
        return ClientConfig(
            url=url.rstrip("/"),
            api_key=key,
            batch_size=get_field(api, "batchSize", int, "api", 5000),
            concurrency=get_field(api, "concurrency", int, "api", 4),
            timeout_seconds=float(get_field(api, "timeoutSeconds", (int, float), "api", 30.0)),
            max_retries=get_field(api, "maxRetries", int, "api", 8),
        )
    except ValueError as error:
        raise JobConfigError(f"api: {error}") from None


def parse_catalog(catalog_raw: dict[str, Any]) -> CatalogConfig:
    catalog_type = get_field(catalog_raw, "type", str, "catalog", "jdbc")
    if catalog_type not in ("jdbc", "glue"):
        raise JobConfigError("catalog.type: must be jdbc or glue")
    defaults = CatalogConfig()
    catalog = CatalogConfig(
        name=get_field(catalog_raw, "name", str, "catalog", "local"),
        type=catalog_type,
        uri=get_field(catalog_raw, "uri", str, "catalog", defaults.uri),
        warehouse=get_field(catalog_raw, "warehouse", str, "catalog", defaults.warehouse),
        # The jars folder is checked when the session starts (build_session), before Spark does any work.
        jars=get_field(catalog_raw, "jars", str, "catalog"),
    )
    if catalog.type == "glue" and not catalog.warehouse.startswith("s3://"):
        raise JobConfigError("catalog.warehouse: the glue catalog needs an s3:// warehouse")
    return catalog


def check_table_name(name: str, catalog: CatalogConfig, key: str) -> str:
    if not TABLE_NAME.match(name) or not name.startswith(catalog.name + "."):
        raise JobConfigError(f"{key}: must be {catalog.name}.<namespace>.<table>")
    return name


def check_partitioning(expressions: object, pseudonymized: Iterable[str], key: str) -> tuple[str, ...]:
    """Partition expressions of a table; identifiers' columns are refused (their pseudonyms would be paths)."""
    if not isinstance(expressions, list):
        raise JobConfigError(f"{key}: must be a list")
    refused = set(pseudonymized)
    for expression in expressions:
        match = PARTITION.match(expression) if isinstance(expression, str) else None
        if match is None:
            raise JobConfigError(f"{key}: each item must be a column or years/months/days/hours(col), bucket(n, col), truncate(n, col)")
        if next(g for g in match.groups() if g) in refused:
            raise JobConfigError(f"{key}: do not partition by a pseudonymized column (its values would become file paths)")
    return tuple(expressions)

