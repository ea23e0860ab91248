"""The client's Arrow wire format against the real API: the same answers as JSON, nulls kept, negotiated once and
logged once, and JSON against a server that does not take Arrow bodies (the fault proxy answering 415 as one does)."""

from __future__ import annotations

import logging

import pyarrow as pa
import pytest

from spark_udfs import PseudonymizationClient, PseudonymizationError
from spark_udfs.client import ValuesRejected
from test_support.servers import FaultProxy

from .conftest import Api

VALUES = [f"1HGCM82633A{i:06d}" for i in range(1500)] + ["jänë@example.com", "東京都", ""]


def test_arrow_and_json_give_the_same_answers(api: Api) -> None:
    arrow = PseudonymizationClient(api.client(wire="arrow", batch_size=400, concurrency=4))
    json = PseudonymizationClient(api.client(wire="json", batch_size=400, concurrency=4))
    pseudonyms = json.pseudonymize("vin", VALUES)
    assert arrow.pseudonymize("vin", VALUES) == pseudonyms
    assert arrow.stats.requests == 4
    with_nulls = pa.array([VALUES[0], None, VALUES[1], None], pa.string())
    answer = arrow.pseudonymize_array("vin", with_nulls)
    assert answer.pseudonyms.to_pylist() == [pseudonyms[0], None, pseudonyms[1], None]
    assert answer.suppressed == frozenset()
    assert json.pseudonymize_array("vin", with_nulls.cast(pa.large_string())).pseudonyms.equals(answer.pseudonyms)
    assert arrow.pseudonymize("device_id", VALUES[:5]) == json.pseudonymize("device_id", VALUES[:5])

    steward = PseudonymizationClient(api.client(key="reidentify", wire="arrow", batch_size=400))
    assert steward.reidentify("vin", pseudonyms) == VALUES
    back = steward.reidentify_array("vin", pa.array([pseudonyms[0], None], pa.large_string()))
    assert back.to_pylist() == [VALUES[0], None]
    with pytest.raises(PseudonymizationError, match="malformed") as failed:
        steward.reidentify("vin", [pseudonyms[0], "not a pseudonym"])
    assert VALUES[0] not in str(failed.value)


def test_negotiates_arrow_once_and_says_so_once(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    client = PseudonymizationClient(api.client(batch_size=500, concurrency=4))
    assert client.wire_format is None
    with caplog.at_level(logging.INFO, logger="spark_udfs.client"):
        first = client.pseudonymize("vin", VALUES)
        client.pseudonymize("vin", VALUES[:10])
    assert client.wire_format == "arrow"
    assert first == PseudonymizationClient(api.client(wire="json")).pseudonymize("vin", VALUES)
    assert [r.getMessage() for r in caplog.records] == [f"pseudonymization API at {api.url}: sending Arrow IPC bodies"]


def test_falls_back_to_json_against_a_server_without_arrow(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    expected = PseudonymizationClient(api.client(wire="json")).pseudonymize("vin", VALUES)
    with FaultProxy(api.url, arrow=False) as old_server:
        client = PseudonymizationClient(api.client(url=old_server.url, batch_size=500, concurrency=4))
        with caplog.at_level(logging.INFO, logger="spark_udfs.client"):
            assert client.pseudonymize("vin", VALUES) == expected
            assert client.pseudonymize_array("vin", pa.array(VALUES[:3])).pseudonyms.to_pylist() == expected[:3]
        assert client.wire_format == "json"
        assert 1 <= old_server.counts["415"] <= 4  # the first wave of requests only
        assert [r.getMessage() for r in caplog.records] == [
            f"pseudonymization API at {old_server.url} does not take Arrow bodies: sending JSON"
        ]
        forced = PseudonymizationClient(api.client(url=old_server.url, wire="arrow"))
        with pytest.raises(PseudonymizationError, match="415"):
            forced.pseudonymize("vin", VALUES[:3])


def test_arrow_refusals_name_indexes_in_the_call(api: Api) -> None:
    client = PseudonymizationClient(api.client(wire="arrow", batch_size=3))
    accounts = ["4111111111111111", "4000123412341234", "5555555555554444", "12AB", "6011000990139424"]
    with pytest.raises(ValuesRejected) as refused:
        client.pseudonymize("account_number", accounts)
    assert set(refused.value.rejected) == {3}
    assert "12AB" not in str(refused.value)
    answer, rejected = client.pseudonymize_valid("account_number", accounts)
    assert set(rejected) == {3}
    assert answer.pseudonyms[3] is None
    assert all(p is not None for i, p in enumerate(answer.pseudonyms) if i != 3)
