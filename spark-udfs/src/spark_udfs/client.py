"""HTTP client for the pseudonymization API, made for Spark executors.

One keep-alive session per process (executors reuse it across tasks), batches of unique values
chunked into requests and sent with bounded concurrency, retries with exponential backoff and full
jitter on 429, 5xx, timeouts and dropped connections (honouring Retry-After). When retries run out
the call raises, so the Spark task fails: a pseudonym is never replaced by a null or an empty string.

A value whose subject's erasure was filed (suppression at ingestion) gets no pseudonym: the API answers null at
its index and lists it in `erased`. `pseudonymize` raises `SubjectSuppressed` on such an answer (a caller that
does not ask cannot write a null in the person's place); `pseudonymize_unless_erased` returns the indexes, so a
job can drop those rows or fail, as it is configured to.

`rewrap` turns pseudonyms of older key versions into the same subjects' pseudonyms under the active version
(`POST /v1/rewrap`, role `rewrap`: the identifiers never leave the service, so a re-keying job needs no
`reidentify`). An erased subject gets no new pseudonym (None, listed in `erased`); a pseudonym the API cannot
rewrap (tampered, another context's, a destroyed key version, a keyed hash) raises `PseudonymsRefused` with the
indexes and reasons.

Wire format: Arrow IPC (one string column per request, the context and options in the query string) when the
server takes it, else JSON. With ``wire="auto"`` (the default) the first request is sent as Arrow; a server that does
not take Arrow bodies answers 415, and from then on this client speaks JSON. The format in use is logged once per
client. The ``*_array`` methods take and give ``pyarrow`` arrays, which go on the wire without Python strings.

The API key is read once per process from the environment, a file, or AWS Secrets Manager.
No value, pseudonym or key ever goes into an exception message or a log line.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal, get_args

import pyarrow as pa
import pyarrow.compute as pc
import requests
from requests.adapters import HTTPAdapter

from .errors import ValueFreeError
from .retry import Backoff

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
#: An answer's body is read in pieces of this size: requests' own 10 KiB pieces cost a fifth of an Arrow request's CPU.
READ_CHUNK_BYTES = 1 << 20
ARROW_STREAM = "application/vnd.apache.arrow.stream"
#: auto: Arrow when the server takes it (negotiated on the first request), else JSON; or one of them, forced.
WireFormat = Literal["auto", "arrow", "json"]
WIRE_FORMATS: tuple[WireFormat, ...] = get_args(WireFormat)

_log = logging.getLogger(__name__)


class _ArrowNotTaken(Exception):
    """The server answered 415 to an Arrow body: it does not take Arrow (internal; the client falls back to JSON)."""


class PseudonymizationError(ValueFreeError):
    """The API refused or could not answer; the message names the problem type, never values."""


class ValuesRejected(PseudonymizationError):
    """The API refused some values of a request (HTTP 400 with per-item reasons, e.g. too long for the
    context's limit or outside an FPE alphabet); `rejected` maps their index in the call to the reason."""

    def __init__(self, message: str, rejected: dict[int, str]) -> None:
        super().__init__(message)
        self.rejected = rejected


class SubjectSuppressed(PseudonymizationError):
    """Some values' subjects have an erasure filed: the API withheld their pseudonyms. `suppressed` holds their
    indexes in the call (never the values)."""

    def __init__(self, message: str, suppressed: frozenset[int]) -> None:
        super().__init__(message)
        self.suppressed = suppressed


class PseudonymsRefused(PseudonymizationError):
    """The API could not rewrap some pseudonyms (per-item errors as /v1/reidentify gives them: `malformed`,
    `unknown-key-version`, `key-destroyed`, `irreversible`, ...); `refused` maps their index in the call to the
    reason. Never the pseudonyms themselves."""

    def __init__(self, message: str, refused: dict[int, str]) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True)
class Rewrapped:
    """A rewrap answer: the new pseudonyms in input order, None exactly at the indexes in `erased` (the subject's
    erasure was filed: no pseudonym comes out, the caller keeps or removes the old one, never writes a new one)."""

    pseudonyms: list[str | None]
    erased: frozenset[int]
    #: The active key version(s) the answers were made under: two only when the key rotated during the call.
    key_versions: frozenset[int]


@dataclass(frozen=True)
class ArrowPseudonyms:
    """`pseudonymize_array`'s answer: a string array in input order (null for null inputs and at `suppressed`)."""

    pseudonyms: pa.Array
    suppressed: frozenset[int]


@dataclass(frozen=True)
class Pseudonyms:
    """A pseudonymize answer with suppression: None at the indexes in `suppressed`, a pseudonym everywhere else."""

    pseudonyms: list[str | None]
    suppressed: frozenset[int]


@dataclass(frozen=True)
class ApiKeySource:
    """Where the API key comes from: exactly one of an environment variable, a file, or a secret."""

    env: str | None = "PSEUDO_API_KEY"
    file: str | None = None
    secret_id: str | None = None
    region: str | None = None

    def read(self) -> str:
        if self.file:
            with open(self.file, encoding="utf-8") as handle:
                return handle.read().strip()
        if self.secret_id:
            import boto3  # only executors that use Secrets Manager need boto3

            text = boto3.client("secretsmanager", region_name=self.region).get_secret_value(SecretId=self.secret_id)[
                "SecretString"
            ]
            return _key_from_secret(text)
        if self.env and os.environ.get(self.env):
            return os.environ[self.env]
        raise PseudonymizationError(f"no API key: set {self.env}, or give a key file or a Secrets Manager secret")


def _key_from_secret(text: str) -> str:
    """A plain key, or JSON with api_key_value (the AWS sample's secret shape) or apiKey."""
    try:
        parsed: Any = json.loads(text)
    except json.JSONDecodeError:
        return text.strip()
    if isinstance(parsed, dict):
        for name in ("api_key_value", "apiKey", "api_key"):
            if isinstance(parsed.get(name), str):
                return str(parsed[name])
    raise PseudonymizationError("the API key secret is JSON without api_key_value or apiKey")


@dataclass(frozen=True)
class ClientConfig:
    """Everything an executor needs to build its client; small and picklable."""

    url: str
    api_key: ApiKeySource = field(default_factory=ApiKeySource)
    #: Values per request. Measured (BENCHMARKS.md): 2,000-10,000 are within ~10% at concurrency 4, 900 is
    #: ~45% slower; 5,000 re-sends half as much as 10,000 on a retry and fits a server limit set below 10,000.
    batch_size: int = 5000
    concurrency: int = 4
    timeout_seconds: float = 30.0
    max_retries: int = 8
    backoff_base_seconds: float = 0.2
    backoff_max_seconds: float = 20.0
    wire: WireFormat = "auto"

    def __post_init__(self) -> None:
        if self.wire not in WIRE_FORMATS:
            raise ValueError(f"wire must be one of {', '.join(WIRE_FORMATS)}")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        if not 1 <= self.batch_size <= 10_000:
            raise ValueError("batch_size must be 1..10000 (the API's default limit per request)")
        if not 1 <= self.concurrency <= 64:
            raise ValueError("concurrency must be 1..64")
        Backoff(self.backoff_base_seconds, self.backoff_max_seconds)  # checks them

    @property
    def backoff(self) -> Backoff:
        return Backoff(self.backoff_base_seconds, self.backoff_max_seconds)


@dataclass
class CallStats:
    """Counts of one client, for metrics: never values."""

    values: int = 0
    requests: int = 0
    retries: int = 0


class PseudonymizationClient:
    def __init__(self, config: ClientConfig, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self._sleep = sleep
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(4, config.concurrency), max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        # The environment's proxies (NO_PROXY included) and CA bundle, settled once for the API's URL: with trust_env
        # requests reads the whole environment again on every request, a fifth of a request's CPU at 5,000 values.
        self._session.trust_env = False
        self._session.proxies.update(requests.utils.get_environ_proxies(config.url))
        ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if ca_bundle:
            self._session.verify = ca_bundle
        self._key: str | None = None
        self._key_lock = threading.Lock()
        self.stats = CallStats()
        self._stats_lock = threading.Lock()
        #: The wire format in use: None until the first answer tells (wire="auto"), then "arrow" or "json".
        self._wire: Literal["arrow", "json"] | None = None if config.wire == "auto" else config.wire
        self._wire_logged = False
        self._wire_lock = threading.Lock()

    @property
    def wire_format(self) -> Literal["arrow", "json"] | None:
        """The format this client speaks: None before the first request when negotiating."""
        return self._wire

    def pseudonymize(self, context: str, values: Sequence[str], deterministic: bool = True) -> list[str]:
        """Pseudonyms for non-null values, in order. Raises SubjectSuppressed if any value's subject is filed for
        erasure (use `pseudonymize_unless_erased` to get the others and the withheld indexes)."""
        answer = self.pseudonymize_unless_erased(context, values, deterministic)
        if answer.suppressed:
            raise SubjectSuppressed(
                f"/v1/pseudonymize: {len(answer.suppressed)} value(s) withheld in context {context}: "
                "their subject's erasure was filed",
                answer.suppressed,
            )
        return [str(p) for p in answer.pseudonyms]

    def pseudonymize_unless_erased(self, context: str, values: Sequence[str], deterministic: bool = True) -> Pseudonyms:
        """Pseudonyms for non-null values, in order, except for values whose subject's erasure was filed: None there,
        and their indexes in `suppressed`."""
        if self._wire != "json" and values:
            answer = self.pseudonymize_array(context, pa.array(values, pa.string()), deterministic)
            return Pseudonyms(answer.pseudonyms.to_pylist(), answer.suppressed)

        def body(chunk: Sequence[str]) -> dict[str, Any]:
            return {"context": context, "values": list(chunk), "deterministic": deterministic}

        results, suppressed = self._batched("/v1/pseudonymize", values, body, "pseudonyms", check_errors=False)
        return Pseudonyms(results, suppressed)

    def pseudonymize_valid(
        self, context: str, values: Sequence[str], deterministic: bool = True
    ) -> tuple[Pseudonyms, dict[int, str]]:
        """Pseudonyms for the values the API accepts (None where it refused one or withheld it, those in
        `suppressed`) and the refused indexes with their reasons: for streams, where one bad value must not stop
        every other record. The API reports at most 20 refusals per request, so each round drops those and asks
        again for the rest."""
        remaining = list(range(len(values)))
        rejected: dict[int, str] = {}
        while True:
            try:
                answer = self.pseudonymize_unless_erased(context, [values[i] for i in remaining], deterministic)
            except ValuesRejected as error:
                refused = {remaining[i]: reason for i, reason in error.rejected.items() if 0 <= i < len(remaining)}
                if not refused:
                    raise
                rejected |= refused
                remaining = [i for i in remaining if i not in rejected]
                continue
            results: list[str | None] = [None] * len(values)
            for index, pseudonym in zip(remaining, answer.pseudonyms, strict=True):
                results[index] = pseudonym
            return Pseudonyms(results, frozenset(remaining[i] for i in answer.suppressed)), rejected

    def reidentify(self, context: str, pseudonyms: Sequence[str]) -> list[str]:
        """Values for pseudonyms, in order; any pseudonym that cannot be reidentified raises."""
        if self._wire != "json" and pseudonyms:
            return [str(v) for v in self.reidentify_array(context, pa.array(pseudonyms, pa.string())).to_pylist()]

        def body(chunk: Sequence[str]) -> dict[str, Any]:
            return {"context": context, "pseudonyms": list(chunk)}

        values, _ = self._batched("/v1/reidentify", pseudonyms, body, "values", check_errors=True)
        return [str(v) for v in values]

    def rewrap(self, context: str, pseudonyms: Sequence[str], key_version: int | None = None) -> Rewrapped:
        """The same subjects' pseudonyms under the active key version, in order (needs the rewrap role). Each
        distinct pseudonym is sent once, in batches of `batch_size` with `concurrency` requests at a time, retried
        as pseudonymize is. `key_version` names the version of FF1 (fpe) pseudonyms, which carry none (default:
        the active one); SIV pseudonyms carry theirs. Raises PseudonymsRefused when any item cannot be rewrapped."""
        unique = list(dict.fromkeys(pseudonyms))
        position = {pseudonym: i for i, pseudonym in enumerate(unique)}
        size = self.config.batch_size
        offsets = range(0, len(unique), size)

        def send(offset: int) -> tuple[list[str | None], set[int], dict[int, str], int]:
            chunk = unique[offset : offset + size]
            body: dict[str, Any] = {"context": context, "pseudonyms": chunk}
            if key_version is not None:
                body["keyVersion"] = key_version
            try:
                answer = self._post("/v1/rewrap", body)
            except ValuesRejected as error:
                return [None] * len(chunk), set(), {offset + i: r for i, r in error.rejected.items()}, 0
            return _rewrap_answer(answer, len(chunk), offset)

        if not unique:
            return Rewrapped([], frozenset(), frozenset())
        if len(offsets) == 1 or self.config.concurrency == 1:
            parts = [send(offset) for offset in offsets]
        else:
            with ThreadPoolExecutor(max_workers=min(self.config.concurrency, len(offsets))) as pool:
                parts = list(pool.map(send, offsets))
        with self._stats_lock:
            self.stats.values += len(unique)
        refused = {index: reason for part in parts for index, reason in part[2].items()}
        if refused:
            reasons = ", ".join(sorted(set(refused.values())))
            raise PseudonymsRefused(
                f"/v1/rewrap: {len(refused)} pseudonym(s) of context {context} could not be rewrapped ({reasons})",
                {i: refused[position[p]] for i, p in enumerate(pseudonyms) if position[p] in refused},
            )
        answers = [value for part in parts for value in part[0]]
        erased_unique = {index for part in parts for index in part[1]}
        return Rewrapped(
            [answers[position[p]] for p in pseudonyms],
            frozenset(i for i, p in enumerate(pseudonyms) if position[p] in erased_unique),
            frozenset(part[3] for part in parts),
        )

    def pseudonymize_array(self, context: str, values: pa.Array, deterministic: bool = True) -> ArrowPseudonyms:
        """`pseudonymize_unless_erased` for a string (or large_string) array, nulls kept: sent as Arrow as it is
        (sliced into batches, no Python strings), or as JSON when the server does not take Arrow."""
        params = {"context": context, "deterministic": "true" if deterministic else "false"}
        answer = self._batched_array("/v1/pseudonymize", values, params, "pseudonyms", check_errors=False)
        if answer is not None:
            return ArrowPseudonyms(*answer)
        positions = _present_positions(values)
        listed = self.pseudonymize_unless_erased(context, values.drop_null().to_pylist(), deterministic)
        return ArrowPseudonyms(
            _scatter(listed.pseudonyms, positions, len(values)), frozenset(positions[i] for i in listed.suppressed)
        )

    def reidentify_array(self, context: str, pseudonyms: pa.Array) -> pa.Array:
        """`reidentify` for a string array, nulls kept (as Arrow when the server takes it)."""
        answer = self._batched_array("/v1/reidentify", pseudonyms, {"context": context}, "values", check_errors=True)
        if answer is not None:
            return answer[0]
        listed: list[str | None] = list(self.reidentify(context, pseudonyms.drop_null().to_pylist()))
        return _scatter(listed, _present_positions(pseudonyms), len(pseudonyms))

    def rewrap_array(
        self, context: str, pseudonyms: pa.Array, key_version: int | None = None
    ) -> tuple[pa.Array, frozenset[int]]:
        """`rewrap` for a string (or large_string) array, nulls kept: the new pseudonyms as a string array in input
        order (null for a null input and at the erased indexes, which come second) sent as Arrow as they are, or as
        JSON when the server does not take Arrow. Every item is sent: a caller sends distinct values (the re-keying
        UDF does). Raises PseudonymsRefused, with indexes into `pseudonyms`, when any item cannot be rewrapped."""
        params = {"context": context}
        if key_version is not None:
            params["keyVersion"] = str(key_version)
        refused: dict[int, str] = {}
        try:
            answer = self._batched_array(
                "/v1/rewrap", pseudonyms, params, "pseudonyms", check_errors=True, refused=refused
            )
        except ValuesRejected as error:  # a 400 naming items: refused as `rewrap` reports it
            refused = error.rejected
            answer = None
        if refused:
            raise PseudonymsRefused(
                f"/v1/rewrap: {len(refused)} pseudonym(s) of context {context} could not be rewrapped "
                f"({', '.join(sorted(set(refused.values())))})",
                refused,
            )
        if answer is not None:
            return answer
        positions = _present_positions(pseudonyms)
        try:
            listed = self.rewrap(context, pseudonyms.drop_null().to_pylist(), key_version)
        except PseudonymsRefused as error:
            raise PseudonymsRefused(str(error), {positions[i]: r for i, r in error.refused.items()}) from None
        return _scatter(listed.pseudonyms, positions, len(pseudonyms)), frozenset(positions[i] for i in listed.erased)

    def ready(self) -> bool:
        try:
            return (
                self._session.get(self.config.url + "/readyz", timeout=self.config.timeout_seconds).status_code == 200
            )
        except requests.RequestException:
            return False

    def close(self) -> None:
        self._session.close()

    def _api_key(self) -> str:
        with self._key_lock:
            if self._key is None:
                self._key = self.config.api_key.read()
            return self._key

    def _batched(
        self,
        path: str,
        items: Sequence[str],
        body: Callable[[Sequence[str]], dict[str, Any]],
        field_name: str,
        check_errors: bool,
    ) -> tuple[list[str | None], frozenset[int]]:
        """The answers in order (None only at the indexes the API listed in `erased`) and those indexes."""
        if not items:
            return [], frozenset()
        size = self.config.batch_size
        offsets = range(0, len(items), size)

        def send(offset: int) -> tuple[list[str | None], set[int]]:
            chunk = items[offset : offset + size]
            try:
                answer = self._post(path, body(chunk))
            except ValuesRejected as error:
                raise ValuesRejected(str(error), {offset + i: reason for i, reason in error.rejected.items()}) from None
            results = answer.get(field_name)
            if not isinstance(results, list) or len(results) != len(chunk):
                raise PseudonymizationError(f"{path}: the answer does not have one {field_name} item per input")
            if check_errors and answer.get("errors"):
                reasons = sorted({str(e.get("reason")) for e in answer["errors"] if isinstance(e, dict)})
                raise PseudonymizationError(
                    f"{path}: {len(answer['errors'])} item(s) could not be reidentified ({', '.join(reasons)})"
                )
            erased = _erased_indexes(answer.get("erased"), len(chunk), path)
            # A null is accepted only where the API says why: anywhere else it would become a silent null in a table.
            if any(not isinstance(r, str) for i, r in enumerate(results) if i not in erased):
                raise PseudonymizationError(f"{path}: the answer has a null for a non-null input")
            if any(results[i] is not None for i in erased):
                raise PseudonymizationError(f"{path}: the answer has a pseudonym at an erased index")
            return [None if i in erased else str(r) for i, r in enumerate(results)], {offset + i for i in erased}

        if len(offsets) == 1 or self.config.concurrency == 1:
            parts = [send(offset) for offset in offsets]
        else:
            with ThreadPoolExecutor(max_workers=min(self.config.concurrency, len(offsets))) as pool:
                parts = list(pool.map(send, offsets))
        with self._stats_lock:
            self.stats.values += len(items)
        return [value for part, _ in parts for value in part], frozenset(i for _, erased in parts for i in erased)

    def _batched_array(
        self,
        path: str,
        items: pa.Array,
        params: dict[str, str],
        column: str,
        check_errors: bool,
        refused: dict[int, str] | None = None,
    ) -> tuple[pa.Array, frozenset[int]] | None:
        """The answers as one string array and the erased indexes, sent as Arrow in slices of `batch_size`; None when
        this client speaks JSON (the server does not take Arrow, or the configuration says so). With `refused`
        (rewrap), the items failed for another reason than erasure are put there (index in the call -> reason,
        their answers null) after every slice was answered, instead of raising."""
        if self._wire == "json":
            return None
        if not pa.types.is_string(items.type) and not pa.types.is_large_string(items.type):
            raise TypeError("the values must be an Arrow string or large_string array")
        if len(items) == 0:
            return pa.array([], pa.string()), frozenset()
        size = self.config.batch_size
        offsets = range(0, len(items), size)

        def send(offset: int) -> tuple[pa.Array, set[int], dict[int, str]]:
            chunk = items.slice(offset, size)
            try:
                response = self._send(path, _arrow_body(chunk), ARROW_STREAM, params)
            except ValuesRejected as error:
                raise ValuesRejected(str(error), {offset + i: reason for i, reason in error.rejected.items()}) from None
            failed: dict[int, str] | None = {} if refused is not None else None
            answers, erased = _arrow_answer(response, chunk, column, check_errors, path, failed)
            return answers, {offset + i for i in erased}, {offset + i: r for i, r in (failed or {}).items()}

        try:
            if len(offsets) == 1 or self.config.concurrency == 1:
                parts = [send(offset) for offset in offsets]
            else:
                with ThreadPoolExecutor(max_workers=min(self.config.concurrency, len(offsets))) as pool:
                    parts = list(pool.map(send, offsets))
        except _ArrowNotTaken:
            if self.config.wire == "arrow":
                raise PseudonymizationError(f"{path}: the server does not take Arrow bodies (HTTP 415)") from None
            self._use_wire("json")
            return None
        self._use_wire("arrow")
        with self._stats_lock:
            self.stats.values += len(items)
        if refused is not None:
            refused.update({i: reason for _, _, failed in parts for i, reason in failed.items()})
        return pa.concat_arrays([part[0] for part in parts]), frozenset(i for part in parts for i in part[1])

    def _use_wire(self, wire: Literal["arrow", "json"]) -> None:
        """Settles the negotiated format, and logs it once per client."""
        with self._wire_lock:
            self._wire = wire
            if self._wire_logged:
                return
            self._wire_logged = True
        if wire == "arrow":
            _log.info("pseudonymization API at %s: sending Arrow IPC bodies", self.config.url)
        else:
            _log.info("pseudonymization API at %s does not take Arrow bodies: sending JSON", self.config.url)

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        answer = self._send(path, data, "application/json")
        try:
            parsed: Any = json.loads(answer.body)
        except ValueError:
            raise PseudonymizationError(f"{path}: the answer is not JSON") from None
        if not isinstance(parsed, dict):
            raise PseudonymizationError(f"{path}: the answer is not a JSON object")
        return parsed

    def _send(self, path: str, data: bytes, content_type: str, params: dict[str, str] | None = None) -> _Answer:
        """POSTs with retries; the 200 answer, read whole. Raises ValuesRejected (400 with per-item reasons),
        _ArrowNotTaken (415 to an Arrow body) or PseudonymizationError (any other refusal, or retries exhausted)."""
        headers = {"content-type": content_type, "x-api-key": self._api_key()}
        if content_type == ARROW_STREAM:
            headers["accept"] = f"{ARROW_STREAM}, application/problem+json"
        last_problem = "no attempt"
        for attempt in range(self.config.max_retries + 1):
            with self._stats_lock:
                self.stats.requests += 1
                if attempt > 0:
                    self.stats.retries += 1
            retry_after: float | None = None
            try:
                # Streamed, so that a 200's body is read in READ_CHUNK_BYTES pieces; the context manager gives the
                # connection back to the pool however the attempt ends.
                with self._session.post(
                    self.config.url + path,
                    data=data,
                    params=params,
                    headers=headers,
                    timeout=self.config.timeout_seconds,
                    stream=True,
                ) as response:
                    if response.status_code == 200:
                        body = b"".join(response.iter_content(READ_CHUNK_BYTES))
                        if _cut_off(response, body):
                            raise requests.exceptions.ChunkedEncodingError("the answer is shorter than its length")
                        return _Answer(response.headers.get("content-type", ""), body)
                    if response.status_code == 415 and content_type == ARROW_STREAM:
                        raise _ArrowNotTaken()
                    problem = _problem_type(response)
                    rejected = _rejected_items(response) if response.status_code == 400 else {}
                    if rejected:
                        raise ValuesRejected(f"{path}: HTTP 400 {problem}: {len(rejected)} value(s) refused", rejected)
                    if response.status_code not in RETRYABLE_STATUS:
                        raise PseudonymizationError(f"{path}: HTTP {response.status_code} {problem}")
                    last_problem = f"HTTP {response.status_code} {problem}"
                    retry_after = _retry_after_seconds(response.headers.get("retry-after"))
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
            ) as error:
                # A connection that failed, also while its answer was being read (a truncated body): tried again.
                last_problem = type(error).__name__
            if attempt == self.config.max_retries:
                break
            self._sleep(self.config.backoff.delay(attempt, retry_after))
        raise PseudonymizationError(
            f"{path}: gave up after {self.config.max_retries + 1} attempts; last: {last_problem}"
        )


def _cut_off(response: requests.Response, body: bytes) -> bool:
    """True when an answer without a content coding is shorter than its Content-Length: urllib3 2 raises on that
    itself, urllib3 1.x (which botocore keeps on older Pythons, e.g. on EMR) returns the short body."""
    length = response.headers.get("content-length", "")
    encoded = response.headers.get("content-encoding", "identity").lower() != "identity"
    return length.isdigit() and not encoded and len(body) != int(length)


@dataclass(frozen=True)
class _Answer:
    """A 200 answer: its content type and its whole body."""

    content_type: str
    body: bytes


def _present_positions(values: pa.Array) -> list[int]:
    """Where the non-null items of an array are (the JSON path sends those only)."""
    positions: list[int] = pc.indices_nonzero(pc.is_valid(values)).to_pylist()
    return positions


def _scatter(answers: list[str | None], positions: list[int], size: int) -> pa.Array:
    """The answers for the non-null items put back at their positions, null elsewhere."""
    full: list[str | None] = [None] * size
    for position, answer in zip(positions, answers, strict=True):
        full[position] = answer
    return pa.array(full, pa.string())


def _arrow_body(values: pa.Array) -> bytes:
    """One Arrow IPC stream of one column, as the API takes it."""
    sink = pa.BufferOutputStream()
    batch = pa.record_batch([values], names=["values"])
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue())


def _arrow_answer(
    response: _Answer,
    sent: pa.Array,
    column: str,
    check_errors: bool,
    path: str,
    refused: dict[int, str] | None = None,
) -> tuple[pa.Array, set[int]]:
    """The answer column of an Arrow answer and the indexes withheld as erased, checked like the JSON answer: a null
    only for a null input or where `reason` says why; any other reason raises when `check_errors` (never a value),
    or, given `refused` (rewrap), is put there and `erased` holds the erased items only."""
    if not response.content_type.startswith(ARROW_STREAM):
        raise PseudonymizationError(f"{path}: the answer to an Arrow request is not Arrow")
    try:
        table = pa.ipc.open_stream(response.body).read_all()
        answers = table.column(column).combine_chunks()
        reasons = table.column("reason").combine_chunks()
    except (pa.ArrowException, KeyError) as error:
        raise PseudonymizationError(f"{path}: the Arrow answer cannot be read ({type(error).__name__})") from None
    if len(answers) != len(sent) or len(reasons) != len(sent):
        raise PseudonymizationError(f"{path}: the answer does not have one {column} item per input")
    erased: set[int] = set()
    refused_here: set[int] = set()
    if reasons.null_count < len(reasons):
        explained = {i: str(r) for i, r in enumerate(reasons.to_pylist()) if r is not None}
        # Reidentify fails on any item, as with JSON; pseudonymize withholds erased items and knows no other reason;
        # rewrap withholds erased items and reports the others by index.
        failed = (
            explained if check_errors and refused is None else {i: r for i, r in explained.items() if r != "erased"}
        )
        if refused is not None:
            if any(answers[i].is_valid for i in failed):
                raise PseudonymizationError(f"{path}: the answer has a pseudonym at a refused index")
            refused.update(failed)
            refused_here = set(failed)
            explained = {i: r for i, r in explained.items() if i not in failed}
        elif failed:
            raise PseudonymizationError(
                f"{path}: {len(failed)} item(s) could not be {'reidentified' if check_errors else 'answered'} "
                f"({', '.join(sorted(set(failed.values())))})"
            )
        erased = set(explained)
        if any(answers[i].is_valid for i in erased):
            raise PseudonymizationError(f"{path}: the answer has a pseudonym at an erased index")
    # A null is accepted only for a null input or where the API says why: anywhere else it would be a silent null.
    unexplained = pc.and_(pc.is_null(answers), pc.is_valid(sent))
    if pc.any(unexplained).as_py() and any(
        i not in erased and i not in refused_here for i in pc.indices_nonzero(unexplained).to_pylist()
    ):
        raise PseudonymizationError(f"{path}: the answer has a null for a non-null input")
    if answers.type != pa.string():
        answers = answers.cast(pa.string())
    return answers, erased


def _problem_type(response: requests.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        return ""
    return str(body.get("type", "")) if isinstance(body, dict) else ""


def _rejected_items(response: requests.Response) -> dict[int, str]:
    """The per-item reasons of a 400 (`errors: [{index, reason}]`); reasons name rules, never values."""
    try:
        body: Any = response.json()
    except ValueError:
        return {}
    items = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(items, list):
        return {}
    return {
        int(e["index"]): str(e.get("reason", ""))
        for e in items
        if isinstance(e, dict) and isinstance(e.get("index"), int)
    }


def _erased_indexes(listed: object, size: int, path: str) -> set[int]:
    """The `erased` list of an answer (absent when no value was withheld), checked: indexes into the request."""
    if listed is None:
        return set()
    if not isinstance(listed, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < size for i in listed
    ):
        raise PseudonymizationError(f"{path}: the answer's erased list is not a list of indexes into the request")
    return set(listed)


def _rewrap_answer(
    answer: dict[str, Any], size: int, offset: int
) -> tuple[list[str | None], set[int], dict[int, str], int]:
    """One /v1/rewrap answer checked: (pseudonyms, erased indexes, refused index -> reason, key version), indexes
    shifted by `offset` into the call. A null is accepted only where the answer says why (erased or an error)."""
    path = "/v1/rewrap"
    results = answer.get("pseudonyms")
    version = answer.get("keyVersion")
    if not isinstance(results, list) or len(results) != size:
        raise PseudonymizationError(f"{path}: the answer does not have one pseudonym item per input")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise PseudonymizationError(f"{path}: the answer has no key version")
    listed = answer.get("errors") or []
    if not isinstance(listed, list) or not all(
        isinstance(e, dict) and isinstance(e.get("index"), int) and 0 <= e["index"] < size for e in listed
    ):
        raise PseudonymizationError(f"{path}: the answer's errors are not a list of indexes into the request")
    refused = {int(e["index"]): str(e.get("reason", "")) for e in listed}
    erased = _erased_indexes(answer.get("erased"), size, path)
    if any(not isinstance(r, str) for i, r in enumerate(results) if i not in erased and i not in refused):
        raise PseudonymizationError(f"{path}: the answer has a null for a non-null input")
    if any(results[i] is not None for i in erased | set(refused)):
        raise PseudonymizationError(f"{path}: the answer has a pseudonym at an erased or refused index")
    return (
        [None if i in erased or i in refused else str(r) for i, r in enumerate(results)],
        {offset + i for i in erased},
        {offset + i: reason for i, reason in refused.items()},
        version,
    )


def _retry_after_seconds(header: str | None) -> float | None:
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(header).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


_clients: dict[ClientConfig, PseudonymizationClient] = {}
_clients_lock = threading.Lock()


def shared_client(config: ClientConfig) -> PseudonymizationClient:
    """The one client of this process for this configuration (one keep-alive session per executor)."""
    with _clients_lock:
        client = _clients.get(config)
        if client is None:
            client = _clients[config] = PseudonymizationClient(config)
        return client
