"""The TypeScript↔Python contracts on the Python side: the same golden documents test/contracts/contracts.test.ts
loads (contracts/golden/<contract>/valid-*.json pass, invalid-*.json are refused), the schemas shipped in the
package are the repository's, and the erasure job's own writers produce documents that pass. No Spark needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spark_udfs.contracts import CONTRACTS, SCHEMA_FILES, ContractError, ContractName, int64, schema_text, validate
from spark_udfs.erasure.job import _sql_string, parse_order
from spark_udfs.jobs.config import JobConfigError, check_registry

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"


def golden(kind: str) -> list[tuple[ContractName, Path]]:
    return [
        (name, path) for name in CONTRACTS for path in sorted((CONTRACTS_DIR / "golden" / name).glob(f"{kind}-*.json"))
    ]


def test_every_contract_has_valid_and_invalid_golden_documents() -> None:
    for name in CONTRACTS:
        assert any(n == name for n, _ in golden("valid")), name
        assert any(n == name for n, _ in golden("invalid")), name


@pytest.mark.parametrize("file_name", SCHEMA_FILES)
def test_the_package_ships_the_repository_schemas_byte_for_byte(file_name: str) -> None:
    # If this fails: cp contracts/*.schema.json spark-udfs/src/spark_udfs/schemas/
    assert schema_text(file_name) == (CONTRACTS_DIR / file_name).read_text(encoding="utf-8")


@pytest.mark.parametrize(("name", "path"), golden("valid"), ids=lambda v: v.name if isinstance(v, Path) else v)
def test_accepts_valid_golden_documents(name: ContractName, path: Path) -> None:
    validate(name, json.loads(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize(("name", "path"), golden("invalid"), ids=lambda v: v.name if isinstance(v, Path) else v)
def test_refuses_invalid_golden_documents(name: ContractName, path: Path) -> None:
    with pytest.raises(ContractError) as refused:
        validate(name, json.loads(path.read_text(encoding="utf-8")))
    assert str(refused.value).startswith(f"{name}: $")


def test_a_refusal_names_the_field_and_never_quotes_the_value() -> None:
    document = json.loads((CONTRACTS_DIR / "golden" / "erasure-order" / "valid-jdbc.json").read_text(encoding="utf-8"))
    document["subjects"][0]["pseudonyms"] = ["s1.sentinel-value", 12345]
    document["sentinel_key"] = True
    with pytest.raises(ContractError) as refused:
        validate("erasure-order", document)
    assert "sentinel" not in str(refused.value) and "12345" not in str(refused.value)


def test_a_snapshot_id_above_2_to_the_53_is_refused_as_a_number_and_kept_exactly_as_a_string() -> None:
    path = CONTRACTS_DIR / "golden" / "erasure-certificate" / "valid-verified.json"
    certificate = json.loads(path.read_text(encoding="utf-8"))
    assert certificate["tables"][0]["snapshotBefore"] == "9130679734744880546"
    certificate["tables"][0]["snapshotBefore"] = 9130679734744880546
    with pytest.raises(ContractError, match=r"snapshotBefore"):
        validate("erasure-certificate", certificate)
    certificate["tables"][0]["snapshotBefore"] = int64(9130679734744880546)
    validate("erasure-certificate", certificate)


def test_the_job_reads_the_golden_orders_including_fpe_pseudonyms_of_a_custom_alphabet() -> None:
    order = parse_order(
        json.loads(
            (CONTRACTS_DIR / "golden" / "erasure-order" / "valid-glue-fpe-custom-alphabet.json").read_text(
                encoding="utf-8"
            )
        )
    )
    assert order.subjects[0].pseudonyms == ("x') OR true --", "ab\\'c d", "ÄÖÜ€ßé")
    assert order.tables[0].name == "glue.crm.accounts"


def test_the_job_refuses_an_order_the_contract_refuses_naming_the_field() -> None:
    raw = json.loads(
        (CONTRACTS_DIR / "golden" / "erasure-order" / "invalid-two-part-table-name.json").read_text(encoding="utf-8")
    )
    with pytest.raises(JobConfigError, match=r"\$\.tables\[0\]\.name"):
        parse_order(raw)


@pytest.mark.parametrize(
    "pseudonym", ["x') OR true --", "a\\'b", "back\\slash", "new\nline", "ÄÖÜ€", "😀emoji", "s1.AbC-_09"]
)
def test_a_pseudonym_goes_into_sql_as_one_literal_whatever_its_characters(pseudonym: str) -> None:
    literal = _sql_string(pseudonym)
    body = literal[1:-1]
    assert literal[0] == literal[-1] == "'" and "'" not in body and "\n" not in body
    # Spark's unescaping of \\uXXXX gives the pseudonym back (UTF-16 code units, as Java strings hold them).
    decoded = body.encode("ascii").decode("unicode_escape").encode("utf-16", "surrogatepass").decode("utf-16")
    assert decoded == pseudonym


def test_the_jobs_take_the_example_registry_and_name_the_key_of_a_bad_one_without_quoting_it() -> None:
    example = CONTRACTS_DIR.parent / "examples" / "erasure-registry.json"
    check_registry(json.loads(example.read_text(encoding="utf-8")))
    registry = json.loads(
        (CONTRACTS_DIR / "golden" / "table-registry" / "valid-glue-default-name.json").read_text("utf-8")
    )
    registry["tables"][0]["columns"] = {"sentinel-column": "email", "email": "sentinel value"}
    with pytest.raises(JobConfigError) as refused:
        check_registry(registry)
    assert str(refused.value).startswith("tables[0].columns: ")
    assert "sentinel" not in str(refused.value)
