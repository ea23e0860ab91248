"""The re-keying job's `--legacy-aws-sample` (spark_udfs.rekey.job) end to end: tables the AWS sample wrote carried
over to this service's pseudonyms. The real API (its own server: the sample's secret is imported into its data
folder with `keys import-aws-sample`, then the keyring reloaded through the admin route), local Spark and Iceberg,
the job as its own process; the sample's pseudonyms come from test/fixtures/aws-sample-vectors.json (outputs of its
own Java classes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from pyspark.sql import SparkSession

from spark_udfs.contracts import validate
from spark_udfs.jobs.session import CatalogConfig
from spark_udfs.rekey.job import is_legacy_aws_sample
from test_support import ROOT
from test_support.servers import ApiServer, started_api
from test_support.suppression import erasure_on

ROLES = ("pseudonymize", "rewrap", "admin", "privacy-officer")
VECTORS: dict[str, Any] = json.loads((ROOT / "test" / "fixtures" / "aws-sample-vectors.json").read_text())


@dataclass(frozen=True)
class Imported:
    server: ApiServer

    def call(self, path: str, body: dict[str, Any], role: str = "pseudonymize", status: int = 200) -> dict[str, Any]:
        key = Path(self.server.key_files[role]).read_text().strip()
        answer = requests.post(self.server.url + path, json=body, headers={"x-api-key": key}, timeout=30)
        assert answer.status_code == status, answer.text
        result: dict[str, Any] = answer.json()
        return result


@pytest.fixture(scope="module")
def imported() -> Iterator[Imported]:
    """A server whose keyring holds its own version 1 and the sample's secret as legacy version 2 (vin, email)."""
    with tempfile.TemporaryDirectory(prefix="aws-sample-") as folder:
        # An hour between refreshes: only the admin reload below brings the import in.
        environment = {**erasure_on(Path(folder)), "PSEUDO_KEYRING_REFRESH_SECONDS": "3600"}
        with started_api(ROLES, environment) as server:
            yield _imported(server, Path(folder))


def _imported(server: ApiServer, folder: Path) -> Imported:
    """The sample's secret imported with the CLI into the server's data folder, and the keyring reloaded."""
    secret = folder / "secret.json"
    secret.write_text(json.dumps(VECTORS["secret"]))
    secret.chmod(0o600)
    subprocess.run(
        [
            *("node", "dist/cli.mjs", "keys", "import-aws-sample"),
            *("--secret-file", str(secret), "--contexts", "vin,email"),
        ],
        cwd=ROOT,
        env={**os.environ, "PSEUDO_DATA_DIR": server.data_dir},
        check=True,
        capture_output=True,
    )
    admin = Path(server.key_files["admin"]).read_text().strip()
    reloaded = requests.post(server.url + "/v1/admin/keyring/reload", headers={"x-api-key": admin}, json={}, timeout=30)
    assert reloaded.status_code == 200, reloaded.text
    return Imported(server)


def write_table(
    spark: SparkSession, vectors: list[dict[str, str]], copies: int = 3
) -> tuple[str, list[tuple[Any, ...]]]:
    """`copies` rows per vector and one null, with a column the option leaves alone (no legacy format)."""
    name = f"local.rekey.sample_{uuid.uuid4().hex[:8]}"
    rows: list[tuple[Any, ...]] = [
        (i, vectors[i % len(vectors)]["pseudonym"], f"row {i}") for i in range(copies * len(vectors))
    ]
    rows.append((len(rows), None, "no vin"))
    spark.createDataFrame(rows, "id bigint, vin string, note string").writeTo(name).tableProperty(
        "format-version", "2"
    ).create()
    return name, rows


def rekey(
    imported: Imported, warehouse: CatalogConfig, name: str, folder: Path, legacy: bool = True
) -> tuple[int, dict[str, Any], str]:
    """The job as its own process (with --legacy-aws-sample unless told): exit code, report, stderr (and stdout)."""
    registry = folder / "registry.json"
    registry.write_text(
        json.dumps(
            {
                "catalog": {"type": "jdbc", "name": "local", "uri": warehouse.uri, "warehouse": warehouse.warehouse},
                "tables": [{"name": name, "columns": {"vin": "vin"}}],
                "keyInventory": "keys.json",
            }
        )
    )
    api = folder / "api.json"
    api.write_text(json.dumps({"api": {"url": imported.server.url, "apiKeyFile": imported.server.key_files["rewrap"]}}))
    job = subprocess.run(
        [
            *(sys.executable, "-m", "spark_udfs.rekey.job", "--registry", str(registry), "--api", str(api)),
            *("--master", "local[2]", "--orphan-grace-seconds", "0"),
            *(["--legacy-aws-sample"] if legacy else []),
        ],
        env={**os.environ, "PYSPARK_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = json.loads(job.stdout) if job.stdout.strip() else {}
    return job.returncode, report, job.stderr + job.stdout


def vin_column(spark: SparkSession, name: str) -> list[str | None]:
    spark.sql(f"REFRESH TABLE {name}")
    return [row[0] for row in spark.sql(f"SELECT vin FROM {name} ORDER BY id").collect()]


def test_only_the_samples_format_counts_as_legacy() -> None:
    for vector in VECTORS["deterministic"] + VECTORS["nonDeterministic"]:
        assert is_legacy_aws_sample(vector["pseudonym"])
    padded = next(v["pseudonym"] for v in VECTORS["deterministic"] if v["pseudonym"].endswith("="))
    assert not is_legacy_aws_sample(padded.rstrip("="))  # padding required
    assert not is_legacy_aws_sample("s1.D12AeJnqxpgQdVcBj2VYjrTEMB4g0cX0OFXtu0If_ZIn")  # ours
    assert not is_legacy_aws_sample("QUJDREVGR0hJSktMTU5PUFFSU1RVVldY")  # 24 bytes: too short for nonce and tag
    assert not is_legacy_aws_sample("0123456789")


def test_a_table_the_sample_wrote_is_rewrapped_to_the_active_version_and_the_inventory_holds_only_it(
    spark: SparkSession, imported: Imported, warehouse: CatalogConfig, tmp_path: Path
) -> None:
    vectors = VECTORS["deterministic"] + VECTORS["nonDeterministic"]
    name, rows = write_table(spark, vectors)
    code, report, output = rekey(imported, warehouse, name, tmp_path)
    assert code == 0, output[-3000:]
    table = report["tables"][0]
    assert table["result"] == "rekeyed" and table["activeVersion"] == 1
    assert table["legacyRewrapped"] == str(3 * len(vectors))
    assert table["columns"]["vin"]["legacyRowsLeft"] == "0"
    assert table["columns"]["vin"]["versionsAfter"] == {"s1": str(3 * len(vectors))}
    assert all(v["pseudonym"] not in output for v in vectors)  # no value in the report or a progress line

    after = vin_column(spark, name)
    identifiers = [v["identifier"] for v in vectors]
    ours = imported.call("/v1/pseudonymize", {"context": "vin", "values": identifiers})["pseudonyms"]
    assert after == [ours[i % len(vectors)] for i in range(3 * len(vectors))] + [None]
    notes = [row[0] for row in spark.sql(f"SELECT note FROM {name} ORDER BY id").collect()]
    assert notes == [note for _, _, note in rows]

    inventory = json.loads((tmp_path / "keys.json").read_text())
    validate("key-inventory", inventory)
    assert inventory["tables"][name]["columns"] == {"vin": {"context": "vin", "keyVersions": [1]}}

    # A re-run finds nothing left of the sample and changes nothing.
    code, report, output = rekey(imported, warehouse, name, tmp_path)
    assert code == 0, output[-3000:]
    assert report["tables"][0]["legacyRewrapped"] == "0"
    assert vin_column(spark, name) == after


def test_an_erased_subjects_sample_pseudonyms_stay_and_keep_the_column_out_of_the_inventory(
    spark: SparkSession, imported: Imported, warehouse: CatalogConfig, tmp_path: Path
) -> None:
    vectors = VECTORS["deterministic"]
    erased = vectors[0]["identifier"]
    imported.call(
        "/v1/erasure-requests",
        {
            "reference": "rekey-legacy-test",
            "reason": "gdpr-art17-1a",
            "subjects": [{"context": "vin", "value": erased}],
        },
        role="privacy-officer",
        status=202,
    )
    name, _ = write_table(spark, vectors, copies=2)
    before = vin_column(spark, name)
    code, report, output = rekey(imported, warehouse, name, tmp_path)
    assert code == 0, output[-3000:]
    after = vin_column(spark, name)
    kept = [i for i, value in enumerate(before) if value is not None and after[i] == value]
    assert kept and all(vectors[i % len(vectors)]["identifier"] == erased for i in kept)  # never a new pseudonym
    column = report["tables"][0]["columns"]["vin"]
    assert column["legacyRowsLeft"] == str(len(kept)) and column["rowsKeptErased"] == str(len(kept))
    assert column["legacyRewrapped"] == str(2 * len(vectors) - len(kept))
    inventory = json.loads((tmp_path / "keys.json").read_text())
    validate("key-inventory", inventory)
    assert inventory["tables"][name]["columns"] == {}  # so `keys destroy` of the legacy version stays refused


def test_without_the_option_a_column_mixing_sample_and_our_pseudonyms_stays_out_of_the_inventory(
    spark: SparkSession, imported: Imported, warehouse: CatalogConfig, tmp_path: Path
) -> None:
    """Not migrated, the sample's pseudonyms still need the legacy version: the column must not enter the key
    inventory with only our versions, or `keys destroy` of the legacy version would pass and shred them."""
    vectors = VECTORS["deterministic"][:4]
    ours = imported.call("/v1/pseudonymize", {"context": "vin", "values": ["WVWZZZ1JZXW000001", "WVWZZZ1JZXW000002"]})
    name, _ = write_table(spark, vectors, copies=1)
    spark.createDataFrame(
        [(100 + i, pseudonym, "ours") for i, pseudonym in enumerate(ours["pseudonyms"])],
        "id bigint, vin string, note string",
    ).writeTo(name).append()
    before = vin_column(spark, name)
    code, report, output = rekey(imported, warehouse, name, tmp_path, legacy=False)
    assert code == 0, output[-3000:]
    assert "AWS sample pseudonyms remain" in report["tables"][0]["columns"]["vin"]["reason"]
    assert vin_column(spark, name) == before
    inventory = json.loads((tmp_path / "keys.json").read_text())
    assert inventory["tables"][name]["columns"] == {}
