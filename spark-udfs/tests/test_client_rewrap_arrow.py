"""`rewrap_array` against the real API (its own server: the test rotates its key and files an erasure): the same
answers as `rewrap` over JSON for a mix of older-version, active-version, erased and null items, sent as Arrow in
several requests; a tampered pseudonym refused by its index in the call, as `rewrap` refuses it; and the JSON
fallback giving the same."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import requests

from spark_udfs import ApiKeySource, ClientConfig, PseudonymizationClient
from spark_udfs.client import PseudonymsRefused, WireFormat
from test_support.servers import ApiServer, rotate_keys, started_api
from test_support.suppression import erasure_on

ROLES = ("pseudonymize", "rewrap", "admin", "privacy-officer")
SUBJECTS = [f"WVWZZZ1JZRW{i:06d}" for i in range(40)]
ERASED = SUBJECTS[7]


def client(server: ApiServer, role: str, wire: WireFormat = "arrow") -> PseudonymizationClient:
    return PseudonymizationClient(
        ClientConfig(
            url=server.url,
            api_key=ApiKeySource(env=None, file=server.key_files[role]),
            wire=wire,
            batch_size=16,
            concurrency=3,
        )
    )


def post(server: ApiServer, role: str, path: str, body: dict[str, Any]) -> requests.Response:
    key = Path(server.key_files[role]).read_text().strip()
    return requests.post(server.url + path, json=body, headers={"x-api-key": key}, timeout=30)


@pytest.fixture(scope="module")
def rotated() -> Iterator[tuple[ApiServer, list[str], list[str]]]:
    """The server, the subjects' pseudonyms under version 1 and (after the rotation) under version 2; ERASED filed."""
    with tempfile.TemporaryDirectory(prefix="rewrap-arrow-") as folder:
        environment = {**erasure_on(Path(folder)), "PSEUDO_KEYRING_REFRESH_SECONDS": "3600"}
        with started_api(ROLES, environment) as server:
            old = client(server, "pseudonymize", "json").pseudonymize("vin", SUBJECTS)
            rotate_keys(server)
            reloaded = post(server, "admin", "/v1/admin/keyring/reload", {})
            assert reloaded.status_code == 200 and reloaded.json()["keyVersion"] == 2, reloaded.text
            new = client(server, "pseudonymize", "json").pseudonymize("vin", SUBJECTS)
            assert all(p.startswith("s1.") for p in old) and all(p.startswith("s2.") for p in new)
            filed = post(
                server,
                "privacy-officer",
                "/v1/erasure-requests",
                {
                    "reference": "rewrap-arrow",
                    "reason": "gdpr-art17-1a",
                    "subjects": [{"context": "vin", "value": ERASED}],
                },
            )
            assert filed.status_code == 202, filed.text
            yield server, old, new


def test_rewrap_array_answers_as_rewrap_does_for_old_active_erased_and_null_items(
    rotated: tuple[ApiServer, list[str], list[str]],
) -> None:
    server, old, new = rotated
    mixed: list[str | None] = [*old, None, *new[:5], None]
    present = [p for p in mixed if p is not None]
    expected = client(server, "rewrap", "json").rewrap("vin", present)
    erased_at = SUBJECTS.index(ERASED)
    assert expected.erased == {erased_at}  # the JSON answer, as the reference

    arrow = client(server, "rewrap", "arrow")
    answers, erased = arrow.rewrap_array("vin", pa.array(mixed, pa.string()))
    assert arrow.wire_format == "arrow" and arrow.stats.requests == 3  # 47 items in slices of 16
    positions = [i for i, p in enumerate(mixed) if p is not None]
    assert erased == {positions[i] for i in expected.erased}
    assert answers.to_pylist() == [
        expected.pseudonyms[positions.index(i)] if i in positions else None for i in range(len(mixed))
    ]
    # Every subject but the erased one comes out under version 2, the same as pseudonymizing it again.
    assert [answers[i].as_py() for i in range(len(old)) if i != erased_at] == [
        p for i, p in enumerate(new) if i != erased_at
    ]
    assert answers[erased_at].as_py() is None

    # A large_string array, and the JSON fallback, give the same.
    assert arrow.rewrap_array("vin", pa.array(mixed, pa.large_string()))[0].equals(answers)
    fallback = client(server, "rewrap", "json").rewrap_array("vin", pa.array(mixed, pa.string()))
    assert fallback[0].equals(answers) and fallback[1] == erased


@pytest.mark.parametrize("wire", ["arrow", "json"])
def test_a_tampered_pseudonym_is_refused_by_its_index_in_the_call_as_rewrap_refuses_it(
    rotated: tuple[ApiServer, list[str], list[str]], wire: WireFormat
) -> None:
    server, old, _ = rotated
    tampered = old[20][:-2] + ("AA" if not old[20].endswith("AA") else "BB")
    mixed: list[str | None] = [*old[:20], None, tampered, *old[21:], "not a pseudonym"]
    with pytest.raises(PseudonymsRefused) as listed:
        client(server, "rewrap", "json").rewrap("vin", [p for p in mixed if p is not None])
    with pytest.raises(PseudonymsRefused) as arrayed:
        client(server, "rewrap", wire).rewrap_array("vin", pa.array(mixed, pa.string()))
    assert listed.value.refused == {20: "authentication-failed", len(old): "malformed"}
    assert arrayed.value.refused == {21: "authentication-failed", len(old) + 1: "malformed"}  # the null counts
    assert tampered not in str(arrayed.value) and old[0] not in str(arrayed.value)
