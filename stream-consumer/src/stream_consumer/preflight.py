"""Checks before Spark starts: the stream exists and the credentials may read it, and the API answers and lets
the key pseudonymize every context the job uses. Failures say what is wrong (never a value); the job exits 2."""

from __future__ import annotations

import os

from spark_udfs import PseudonymizationClient, PseudonymizationError, ValuesRejected
from spark_udfs.errors import ValueFreeError
from spark_udfs.jobs.config import JobConfigError, check_api_key

from .config import SourceConfig, StreamJobConfig


class PreflightError(ValueFreeError):
    """Something the job needs is missing or refuses it; the message says what, never a value."""


def check_stream(source: SourceConfig) -> int:
    """The number of open shards of the stream; PreflightError saying what is wrong otherwise."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    client = boto3.client(
        "kinesis", region_name=source.region, **({"endpoint_url": source.endpoint_url} if source.endpoint_url else {})
    )
    try:
        summary = client.describe_stream_summary(StreamName=source.stream_name)["StreamDescriptionSummary"]
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "ResourceNotFoundException":
            raise PreflightError(f"source.streamName: no stream {source.stream_name} in {source.region}") from None
        if code in (
            "UnrecognizedClientException",
            "InvalidClientTokenId",
            "InvalidSignatureException",
            "ExpiredTokenException",
            "AccessDeniedException",
        ) or status in (401, 403):
            raise PreflightError(
                f"the AWS credentials were refused for stream {source.stream_name} ({code or status})"
            ) from None
        raise PreflightError(f"cannot describe stream {source.stream_name} ({code})") from None
    except NoCredentialsError:
        raise PreflightError("no AWS credentials found (environment, profile or instance role)") from None
    except EndpointConnectionError:
        raise PreflightError(f"cannot reach the Kinesis endpoint for {source.region}") from None
    except BotoCoreError as error:
        raise PreflightError(f"cannot describe stream {source.stream_name} ({type(error).__name__})") from None
    if summary["StreamStatus"] not in ("ACTIVE", "UPDATING"):
        raise PreflightError(f"stream {source.stream_name} is {summary['StreamStatus']}")
    return int(summary["OpenShardCount"])


def check_api(config: StreamJobConfig) -> None:
    """The API key can be read, the API answers, and the key may pseudonymize every context the job uses (a probe
    value each)."""
    try:
        check_api_key(config.api)
    except JobConfigError as error:
        raise PreflightError(str(error)) from None
    client = PseudonymizationClient(config.api)
    try:
        if not client.ready():
            raise PreflightError(f"api.url: the API at {config.api.url} is not reachable or not ready (GET /readyz)")
        probes = [(context, True) for context in sorted(set(config.columns.values()))] + [
            (config.dead_letter.context, False)
        ]
        for context, deterministic in probes:
            try:
                client.pseudonymize(context, ["probe"], deterministic=deterministic)
            except ValuesRejected:
                pass  # the context exists and the key may use it; "probe" just does not fit its alphabet
            except PseudonymizationError as error:
                raise PreflightError(f"api: cannot pseudonymize context {context}: {error}") from None
    finally:
        client.close()


def check_checkpoint(config: StreamJobConfig) -> None:
    """A local checkpoint folder exists or can be created, checked before the stream, the API and Spark (Spark
    would find out only when the query starts). Other filesystems (s3://) are Spark's to check."""
    location = config.checkpoint_location
    if "://" in location and not location.startswith("file:"):
        return
    path = os.path.abspath(location.removeprefix("file://").removeprefix("file:"))
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise PreflightError(
            f"checkpointLocation: cannot create or write the folder {path} ({existing} is not a writable folder)"
        )
