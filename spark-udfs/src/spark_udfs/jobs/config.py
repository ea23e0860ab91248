"""Configuration pieces every job shares (the API client, the Iceberg catalog, names), validated with
errors that name the key at fault, before Spark starts."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..client import WIRE_FORMATS, ApiKeySource, ClientConfig, WireFormat
from ..contracts import ContractError, common_pattern, validate
from ..iceberg import read_text
from ..spark import SUPPRESSED_POLICIES, SuppressedPolicy
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
    except Exception:
        raise JobConfigError(f"cannot read {path} as JSON") from None
    if not isinstance(parsed, dict):
        raise JobConfigError(f"{path}: must hold a JSON object")
    return parsed


class Section:
    """A JSON object of a configuration, read through typed getters: each value comes out with its type or the
    getter raises JobConfigError naming the key (`api.batchSize: must be of type int`). Null counts as missing."""

    def __init__(self, values: Mapping[str, object], path: str = "") -> None:
        self.values = values
        self.path = path

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def _typed(self, name: str, kind: type | tuple[type, ...], kind_name: str) -> object:
        value = self.values.get(name)
        # bool is an int in Python: a true/false where a number belongs is still a mistake.
        if value is not None and (not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)):
            raise JobConfigError(f"{self.key(name)}: must be of type {kind_name}")
        return value

    def section(self, name: str) -> Section:
        value = self.values.get(name)
        if value is None:
            return Section({}, self.key(name))
        if not isinstance(value, dict):
            raise JobConfigError(f"{self.key(name)}: must be an object")
        return Section(value, self.key(name))

    def optional_text(self, name: str) -> str | None:
        value = self._typed(name, str, "str")
        return value if isinstance(value, str) else None

    def text(self, name: str, default: str) -> str:
        value = self.optional_text(name)
        return default if value is None else value

    def required_text(self, name: str, hint: str = "") -> str:
        value = self.optional_text(name)
        if not value:
            raise JobConfigError(f"{self.key(name)}: required{f' ({hint})' if hint else ''}")
        return value

    def optional_integer(self, name: str) -> int | None:
        value = self._typed(name, int, "int")
        return value if isinstance(value, int) else None

    def integer(self, name: str, default: int) -> int:
        value = self.optional_integer(name)
        return default if value is None else value

    def number(self, name: str, default: float) -> float:
        value = self._typed(name, (int, float), "int or float")
        return float(value) if isinstance(value, (int, float)) else default

    def flag(self, name: str, default: bool) -> bool:
        value = self._typed(name, bool, "bool")
        return value if isinstance(value, bool) else default

    def text_list(self, name: str, rule: str = "must be a list of strings") -> list[str]:
        value = self._typed(name, list, "list")
        items = value if isinstance(value, list) else []
        if not all(isinstance(item, str) for item in items):
            raise JobConfigError(f"{self.key(name)}: {rule}")
        return [str(item) for item in items]

    def objects(self, name: str) -> list[Section]:
        """A list of objects, each read as a Section named `name[index]`."""
        value = self._typed(name, list, "list")
        sections = []
        for index, item in enumerate(value if isinstance(value, list) else []):
            if not isinstance(item, dict):
                raise JobConfigError(f"{self.key(name)}[{index}]: must be an object")
            sections.append(Section(item, f"{self.key(name)}[{index}]"))
        return sections

    def text_map(self, name: str, rule: str) -> dict[str, str]:
        """A non-empty object of strings to strings; `rule` says what it should hold when it does not."""
        value = self.values.get(name)
        if (
            not isinstance(value, dict)
            or not value
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        ):
            raise JobConfigError(f"{self.key(name)}: {rule}")
        return {str(k): str(v) for k, v in value.items()}


def parse_api(api_raw: Mapping[str, object]) -> ClientConfig:
    api = Section(api_raw, "api")
    url = api.required_text("url")
    key = ApiKeySource(
        env=api.text("apiKeyEnv", "PSEUDO_API_KEY"),
        file=api.optional_text("apiKeyFile"),
        secret_id=api.optional_text("apiKeySecretId"),
        region=api.optional_text("region"),
    )
    # auto: Arrow IPC when the server takes it (negotiated on the first request), else JSON; arrow or json forces one.
    wires: dict[str, WireFormat] = {wire: wire for wire in WIRE_FORMATS}
    wire = wires.get(api.text("wire", "auto"))
    if wire is None:
        raise JobConfigError(f"{api.key('wire')}: must be {', '.join(WIRE_FORMATS[:-1])} or {WIRE_FORMATS[-1]}")
    try:
        return ClientConfig(
            url=url.rstrip("/"),
            api_key=key,
            batch_size=api.integer("batchSize", 5000),
            concurrency=api.integer("concurrency", 4),
            timeout_seconds=api.number("timeoutSeconds", 30.0),
            max_retries=api.integer("maxRetries", 8),
            wire=wire,
        )
    except ValueError as error:
        raise JobConfigError(f"api: {error}") from None


def check_api_key(client: ClientConfig, section: str = "api") -> None:
    """The API key can be had where the configuration says, checked on the driver before Spark starts (a missing
    key file surfaced only inside a failed task's trace). The message names the key and the file, never the key.
    A Secrets Manager secret is read by the executors and checked by the API probe."""
    source = client.api_key
    if source.file:
        where = source.file if os.path.isabs(source.file) else f"{source.file} (relative to {os.getcwd()})"
        try:
            with open(source.file, encoding="utf-8") as handle:
                present = bool(handle.read().strip())
        except FileNotFoundError:
            raise JobConfigError(f"{section}.apiKeyFile: {where} does not exist") from None
        except IsADirectoryError:
            raise JobConfigError(f"{section}.apiKeyFile: {where} is a folder, not a key file") from None
        except (OSError, UnicodeDecodeError) as error:
            raise JobConfigError(f"{section}.apiKeyFile: cannot read {where} ({type(error).__name__})") from None
        if not present:
            raise JobConfigError(f"{section}.apiKeyFile: {where} is empty")
    elif not source.secret_id and not (source.env and os.environ.get(source.env)):
        raise JobConfigError(
            f"{section}.apiKeyEnv: {source.env} is not set; set it, or give {section}.apiKeyFile or "
            f"{section}.apiKeySecretId"
        )


def parse_catalog(catalog_raw: Mapping[str, object]) -> CatalogConfig:
    section = Section(catalog_raw, "catalog")
    catalog_types: dict[str, Literal["jdbc", "glue"]] = {"jdbc": "jdbc", "glue": "glue"}
    catalog_type = catalog_types.get(section.text("type", "jdbc"))
    if catalog_type is None:
        raise JobConfigError("catalog.type: must be jdbc or glue")
    defaults = CatalogConfig()
    catalog = CatalogConfig(
        # The service's table registry names a glue catalog `glue` when it has no name: a registry means the same here.
        name=section.text("name", "glue" if catalog_type == "glue" else "local"),
        type=catalog_type,
        uri=section.text("uri", defaults.uri),
        warehouse=section.text("warehouse", defaults.warehouse),
        # The jars folder is checked when the session starts (build_session), before Spark does any work.
        jars=section.optional_text("jars"),
    )
    if catalog.type == "glue" and not catalog.warehouse.startswith("s3://"):
        raise JobConfigError("catalog.warehouse: the glue catalog needs an s3:// warehouse")
    return catalog


def parse_suppressed(config: Section) -> SuppressedPolicy:
    """The `suppressed` key of a job: what to do with a row whose subject's erasure was filed (default drop)."""
    policies: dict[str, SuppressedPolicy] = {policy: policy for policy in SUPPRESSED_POLICIES}
    policy = policies.get(config.text("suppressed", "drop"))
    if policy is None:
        raise JobConfigError(f"{config.key('suppressed')}: must be {' or '.join(SUPPRESSED_POLICIES)}")
    return policy


def check_table_name(name: str, catalog: CatalogConfig, key: str) -> str:
    if not TABLE_NAME.match(name) or not name.startswith(catalog.name + "."):
        raise JobConfigError(f"{key}: must be {catalog.name}.<namespace>.<table>")
    return name


@dataclass(frozen=True)
class RegisteredTable:
    """A table of the service's registry (or an erasure order): its name and which column holds which context."""

    name: str
    #: column -> context
    columns: dict[str, str]


def parse_registered_tables(section: Section, catalog: CatalogConfig) -> tuple[RegisteredTable, ...]:
    """The `tables` list of a registry or an erasure order; at least one, names in `catalog`, plain column names."""
    tables = []
    for table in section.objects("tables"):
        name = check_table_name(table.text("name", ""), catalog, table.key("name"))
        columns = table.text_map("columns", "must map column names to contexts")
        if not all(IDENTIFIER.match(column) for column in columns):
            raise JobConfigError(f"{table.key('columns')}: must map column names to contexts")
        tables.append(RegisteredTable(name, columns))
    if not tables:
        raise JobConfigError("tables: at least one registered table")
    return tuple(tables)


def check_registry(raw: Mapping[str, object]) -> None:
    """The service's table registry (a job's --registry) against contracts/table-registry.schema.json, the contract
    the service checks it against too: what the job's own parse did not look at (a field the service would refuse,
    columns of a table only maintained). Called after that parse, whose messages say more (the catalog's name, the
    keys a section may hold). The error names the key and the rule, never a value (exit 2)."""
    try:
        validate("table-registry", raw)
    except ContractError as error:
        key = "registry" if error.path == "$" else error.path.removeprefix("$.")
        raise JobConfigError(f"{key}: {error.reason}") from None


def partition_source(expression: str) -> tuple[str, str]:
    """The transform (years, months, days, hours, bucket, truncate or identity) and source column of a partition
    expression check_partitioning accepted."""
    match = PARTITION.match(expression)
    if match is None:
        raise JobConfigError(f"not a partition expression: {expression}")
    column = next(g for g in match.groups() if g)
    transform = "identity" if match.group(3) else expression.split("(", 1)[0]
    return transform, column


def check_partitioning(expressions: object, pseudonymized: Iterable[str], key: str) -> tuple[str, ...]:
    """Partition expressions of a table; identifiers' columns are refused (their pseudonyms would be paths)."""
    if not isinstance(expressions, list):
        raise JobConfigError(f"{key}: must be a list")
    refused = set(pseudonymized)
    for expression in expressions:
        match = PARTITION.match(expression) if isinstance(expression, str) else None
        if match is None:
            raise JobConfigError(
                f"{key}: each item must be a column or years/months/days/hours(col), bucket(n, col), truncate(n, col)"
            )
        if next(g for g in match.groups() if g) in refused:
            raise JobConfigError(
                f"{key}: do not partition by a pseudonymized column (its values would become file paths)"
            )
    return tuple(expressions)
