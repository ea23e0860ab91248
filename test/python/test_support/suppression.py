"""The API with erasure on, for the suppression-at-ingestion tests of both packages: a privacy officer files an
erasure over HTTP, and from then on pseudonymize withholds the subject (v1: null plus its index in `erased`).

Filing alone suppresses; the erasure worker (which would delete the subject from the registered tables) is not
needed here, so it polls hourly and never starts a run while a test lasts. The registry lists one placeholder
table of its own catalog (created with pyiceberg), because the service checks at start that registered tables
exist."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

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


@contextmanager
def erasure_api(contexts: Sequence[str] = ("email", "vin")) -> Iterator[ErasureApi]:
    """The API with erasure on for `contexts`, keys for pseudonymize, reidentify and privacy-officer."""

    with tempfile.TemporaryDirectory(prefix="suppression-registry-") as folder:
        catalog = _placeholder_catalog(Path(folder), contexts)
        registry = Path(folder) / "registry.json"
        registry.write_text(
            json.dumps(
                {
                    "catalog": {"type": "jdbc", "name": "local", **catalog},
                    "tables": [{"name": "local.registry.subjects", "columns": {c: c for c in contexts}}],
                }
            )
        )
        environment = {
            "PSEUDO_ERASURE_REGISTRY_FILE": str(registry),
            "PSEUDO_ERASURE_POLL_SECONDS": "3600",
        }
        with started_api(ROLES, environment) as server:
            yield ErasureApi(server)
