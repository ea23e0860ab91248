"""The HTTP client against the real API, directly and through the fault-injecting proxy."""

from __future__ import annotations

import json
import os
import socket

import pyarrow as pa
import pytest
import requests

from spark_udfs import ApiKeySource, ClientConfig, PseudonymizationClient, PseudonymizationError
from spark_udfs.client import _cut_off, _key_from_secret, _retry_after_seconds
from test_support.servers import FaultProxy

from .conftest import Api

VINS = [f"1HGCM82633A{i:06d}" for i in range(1000)]


def test_chunks_concurrently_and_keeps_order(api: Api) -> None:
    client = PseudonymizationClient(api.client(batch_size=37, concurrency=4))
    pseudonyms = client.pseudonymize("vin", VINS)
    assert len(pseudonyms) == len(VINS)
    direct = api.call("/v1/pseudonymize", {"context": "vin", "values": VINS[:10]})["pseudonyms"]
    assert pseudonyms[:10] == direct
    assert client.stats.requests == 28
    steward = PseudonymizationClient(api.client(key="reidentify", batch_size=100))
    assert steward.reidentify("vin", pseudonyms) == VINS


def test_recovers_from_errors_throttling_and_dropped_connections(api: Api) -> None:
    with FaultProxy(api.url, errors=0.2, throttles=0.1, drops=0.1) as proxy:
        waits: list[float] = []
        client = PseudonymizationClient(
            api.client(url=proxy.url, batch_size=50, concurrency=2, backoff_base_seconds=0.001), sleep=waits.append
        )
        assert client.pseudonymize("vin", VINS) == PseudonymizationClient(api.client()).pseudonymize("vin", VINS)
        assert client.stats.retries > 0
        assert proxy.counts["503"] and proxy.counts["429"] and proxy.counts["dropped"]
        assert len(waits) == client.stats.retries


def test_retries_an_answer_cut_off_mid_body_in_either_format(api: Api) -> None:
    expected = PseudonymizationClient(api.client()).pseudonymize("vin", VINS)
    for wire in ("json", "arrow"):
        with FaultProxy(api.url, truncations=0.3) as proxy:
            client = PseudonymizationClient(
                api.client(url=proxy.url, batch_size=50, concurrency=2, backoff_base_seconds=0.001, wire=wire),
                sleep=lambda _: None,
            )
            assert client.pseudonymize_array("vin", pa.array(VINS)).pseudonyms.to_pylist() == expected
            assert proxy.counts["truncated"] > 0
            assert client.stats.retries >= proxy.counts["truncated"]


def test_an_answer_shorter_than_its_length_counts_as_cut_off() -> None:
    # urllib3 1.x hands back a short body where 2.x raises: the client checks the length itself.
    response = requests.Response()
    response.headers["content-length"] = "10"
    assert _cut_off(response, b"12345")
    assert not _cut_off(response, b"1234567890")
    response.headers["content-encoding"] = "gzip"  # the length is of the encoded body: not comparable
    assert not _cut_off(response, b"12345")
    del response.headers["content-length"]
    del response.headers["content-encoding"]
    assert not _cut_off(response, b"12345")


def test_takes_proxies_from_the_environment_once_and_honours_no_proxy(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as closed:  # a port nothing listens on: a proxy there refuses every connection
        closed.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
    monkeypatch.setenv("HTTP_PROXY", nowhere)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    through_proxy = PseudonymizationClient(api.client(max_retries=0))
    with pytest.raises(PseudonymizationError, match=r"ProxyError|ConnectionError"):
        through_proxy.pseudonymize("vin", VINS[:3])
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    direct = PseudonymizationClient(api.client())
    expected = api.call("/v1/pseudonymize", {"context": "vin", "values": VINS[:3]})["pseudonyms"]
    assert direct.pseudonymize("vin", VINS[:3]) == expected
    # Settled when the client was made: the environment changing afterwards does not reroute it.
    monkeypatch.delenv("NO_PROXY")
    assert direct.pseudonymize("vin", VINS[:3]) == expected


def test_honours_retry_after_and_backs_off_exponentially(api: Api) -> None:
    assert _retry_after_seconds("3") == 3.0
    assert _retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert _retry_after_seconds("soon") is None
    with FaultProxy(api.url, fail_all_posts=True) as proxy:
        waits: list[float] = []
        client = PseudonymizationClient(
            api.client(url=proxy.url, max_retries=5, backoff_base_seconds=1.0, backoff_max_seconds=8.0),
            sleep=waits.append,
        )
        with pytest.raises(PseudonymizationError) as failure:
            client.pseudonymize("vin", ["SENTINEL-VIN-123"])
        assert "gave up after 6 attempts" in str(failure.value)
        assert "SENTINEL" not in str(failure.value)
        assert len(waits) == 5
        assert all(0 <= w <= min(8.0, 2**i) for i, w in enumerate(waits))


def test_fails_at_once_on_a_client_mistake(api: Api, tmp_path: os.PathLike[str]) -> None:
    key_file = os.path.join(tmp_path, "wrong.key")
    with open(key_file, "w", encoding="utf-8") as handle:
        handle.write("pk_000000000000_" + "A" * 43)
    client = PseudonymizationClient(ClientConfig(url=api.url, api_key=ApiKeySource(env=None, file=key_file)))
    with pytest.raises(PseudonymizationError, match="HTTP 401 urn:pseudonymization:problem:unauthenticated"):
        client.pseudonymize("vin", ["x"])
    assert client.stats.retries == 0
    with pytest.raises(PseudonymizationError, match="HTTP 400 urn:pseudonymization:problem:unknown-context"):
        PseudonymizationClient(api.client()).pseudonymize("shoe_size", ["42"])


def test_reidentify_never_returns_a_null_for_a_failed_item(api: Api) -> None:
    steward = PseudonymizationClient(api.client(key="reidentify"))
    with pytest.raises(PseudonymizationError, match=r"1 item\(s\) could not be reidentified \(malformed\)"):
        steward.reidentify("vin", ["not-a-pseudonym"])


def test_reads_the_key_from_env_file_or_secret_shapes(monkeypatch: pytest.MonkeyPatch, api: Api) -> None:
    with open(api.pseudonymize_key_file, encoding="utf-8") as handle:
        key = handle.read().strip()
    monkeypatch.setenv("MY_KEY", key)
    assert ApiKeySource(env="MY_KEY").read() == key
    assert ApiKeySource(env=None, file=api.pseudonymize_key_file).read() == key
    assert _key_from_secret(json.dumps({"api_key_value": key})) == key
    assert _key_from_secret(key) == key
    with pytest.raises(PseudonymizationError, match="no API key"):
        ApiKeySource(env="UNSET_VARIABLE_X").read()


def test_config_refuses_impossible_settings() -> None:
    for options in ({"batch_size": 0}, {"batch_size": 10_001}, {"concurrency": 0}):
        with pytest.raises(ValueError):
            ClientConfig(url="http://127.0.0.1:1", **options)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ClientConfig(url="127.0.0.1:8080")


def test_reads_the_key_once_from_secrets_manager(api: Api, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    for name, value in {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    with open(api.pseudonymize_key_file, encoding="utf-8") as handle:
        key = handle.read().strip()
    secrets = boto3.client("secretsmanager", region_name="eu-west-1")
    secrets.create_secret(Name="spark/api-key", SecretString=json.dumps({"api_key_value": key}))
    client = PseudonymizationClient(
        ClientConfig(url=api.url, api_key=ApiKeySource(env=None, secret_id="spark/api-key", region="eu-west-1"))
    )
    assert len(client.pseudonymize("vin", ["A", "B"])) == 2
    # Rotating the secret does not reach a running client: it was read once, not per request.
    secrets.put_secret_value(
        SecretId="spark/api-key", SecretString=json.dumps({"api_key_value": "pk_000000000000_" + "A" * 43})
    )
    assert len(client.pseudonymize("vin", ["C"])) == 1
