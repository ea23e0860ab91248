"""The API with erasure on, for the suppression-at-ingestion tests of both packages: a privacy officer files an
erasure over HTTP, and from then on pseudonymize withholds the subject (v1: null plus its index in `erased`).

Filing alone suppresses, so by default the erasure worker (which deletes the subject from the registered tables)
polls hourly and never starts a run while a test lasts, and the registry lists one placeholder table of its own
catalog (created with pyiceberg: the service checks at start that registered tables exist). A lift needs the
erasure finished first: `erasure_api(registered=...)` registers real tables and runs the erasure job on them."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from . import ROOT
from .servers import ApiServer, started_api

ROLES = ("pseudonymize", "reidentify", "privacy-officer")


@dataclass(frozen=True)
class ErasureApi:
    server: ApiServer

    @property
    def url(self) -> str:
        return self.server.url

    def key(self, role: str) -> str:
        return Path(self.server.key_files[role]).read_text().strip()

    def file(self, reference: str, subjects: Sequence[tuple[str, str]]) -> str:
        """Files an erasure for (context, value) subjects as the privacy officer; returns the request id."""
        answer = requests.post(
            f"{self.url}/v1/erasure-requests",
            headers={"x-api-key": self.key("privacy-officer")},
            json={
                "reference": reference,
                "reason": "gdpr-art17-1a",
                "subjects": [{"context": context, "value": value} for context, value in subjects],
            },
            timeout=30,
        )
        assert answer.status_code == 202, answer.text
        request_id: str = answer.json()["id"]
        return request_id

    def wait_until_verified(self, request_id: str, timeout: float = 600) -> None:
        """Polls the erasure request until its run is verified (fails at once if it failed)."""
        deadline = time.monotonic() + timeout
        status = "unknown"
        while time.monotonic() < deadline:
            answer = requests.get(
                f"{self.url}/v1/erasure-requests/{request_id}",
                headers={"x-api-key": self.key("privacy-officer")},
                timeout=30,
            )
            status = answer.json()["status"]
            if status == "verified":
                return
            assert status != "failed", answer.text
            time.sleep(0.5)
        raise AssertionError(f"the erasure request is {status} after {timeout} s")

    def lift(self, reference: str, subjects: Sequence[tuple[str, str]], reason: str = "consent") -> str:
        """Lifts the suppression of (context, value) subjects as the privacy officer; returns the lift id."""
        answer = requests.post(
            f"{self.url}/v1/erasure-lifts",
            headers={"x-api-key": self.key("privacy-officer")},
            json={
                "reference": reference,
                "reason": reason,
                "subjects": [{"context": context, "value": value} for context, value in subjects],
            },
            timeout=30,
        )
        assert answer.status_code == 201, answer.text
        lift_id: str = answer.json()["id"]
        return lift_id

    def pseudonymize(self, context: str, values: Sequence[str]) -> dict[str, object]:
        """The raw v1 answer (pseudonyms, keyVersion, and erased when some are withheld)."""
        answer = requests.post(
            f"{self.url}/v1/pseudonymize",
            headers={"x-api-key": self.key("pseudonymize")},
            json={"context": context, "values": list(values)},
            timeout=30,
        )
        answer.raise_for_status()
        result: dict[str, object] = answer.json()
        return result


def _placeholder_catalog(folder: Path, contexts: Sequence[str]) -> dict[str, str]:
    """A SQLite catalog holding local.registry.subjects with one string column per context."""
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.schema import Schema
    from pyiceberg.types import NestedField, StringType

    uri, warehouse = str(folder / "catalog.db"), str(folder / "warehouse")
    catalog = SqlCatalog("local", uri=f"sqlite:///{uri}", warehouse=f"file://{warehouse}")
    catalog.create_namespace("registry")
    fields = [NestedField(i + 1, context, StringType(), required=False) for i, context in enumerate(contexts)]
    catalog.create_table("registry.subjects", Schema(*fields))
    return {"uri": uri, "warehouse": warehouse}


@dataclass(frozen=True)
class Registered:
    """Tables of an existing local catalog for the erasure worker to erase from: name -> {column: context}."""

    uri: str
    warehouse: str
    tables: Mapping[str, Mapping[str, str]]


@contextmanager
def erasure_api(
    contexts: Sequence[str] = ("email", "vin"), registered: Registered | None = None
) -> Iterator[ErasureApi]:
    """The API with erasure on for `contexts`, keys for pseudonymize, reidentify and privacy-officer; with
    `registered`, the worker erases filed subjects from those tables (the erasure job on local Spark)."""
    with tempfile.TemporaryDirectory(prefix="suppression-registry-") as folder:
        if registered is None:
            catalog = _placeholder_catalog(Path(folder), contexts)
            tables = [{"name": "local.registry.subjects", "columns": {c: c for c in contexts}}]
            worker = {"PSEUDO_ERASURE_POLL_SECONDS": "3600"}
        else:
            catalog = {"uri": registered.uri, "warehouse": registered.warehouse}
            tables = [{"name": name, "columns": dict(columns)} for name, columns in registered.tables.items()]
            worker = {
                "PSEUDO_ERASURE_POLL_SECONDS": "1",
                "PSEUDO_ERASURE_PYTHON": str(ROOT / ".venv" / "bin" / "python"),
                "PSEUDO_ERASURE_ORPHAN_GRACE_SECONDS": "0",
            }
        registry = Path(folder) / "registry.json"
        registry.write_text(json.dumps({"catalog": {"type": "jdbc", "name": "local", **catalog}, "tables": tables}))
        with started_api(ROLES, {"PSEUDO_ERASURE_REGISTRY_FILE": str(registry), **worker}) as server:
            yield ErasureApi(server)


def erasure_on(folder: Path) -> dict[str, str]:
    """The server's settings for erasure on (for the erased subject), with a placeholder registry: the worker never
    runs while the tests do."""
    catalog = _placeholder_catalog(folder, ("vin",))
    registry = folder / "registry.json"
    registry.write_text(
        json.dumps(
            {
                "catalog": {"type": "jdbc", "name": "local", **catalog},
                "tables": [{"name": "local.registry.subjects", "columns": {"vin": "vin"}}],
            }
        )
    )
    return {"PSEUDO_ERASURE_REGISTRY_FILE": str(registry), "PSEUDO_ERASURE_POLL_SECONDS": "3600"}
