"""`npm run local-stack [-- --port 5000]`: a local AWS endpoint for the README's walk-through, in one command.

Starts moto's server on 127.0.0.1 with the project's moto launcher (test/python/test_support/local_moto.py, the
one way the tests start moto: the local stack is a development command run from a checkout, like the tests, and
nothing of it ships in a wheel or the Lambda zip), with dummy credentials; creates what the examples use (the
Kinesis stream `vehicles` of examples/stream.json, and the Secrets Manager secret `pseudonymization/spark-key`
holding data/api-keys/spark.key when that file exists, as the README's Spark snippet reads it); prints the
endpoint and the variables to export; and runs until Ctrl-C (or SIGTERM), then stops moto and exits 0.
Everything lives in moto's memory: a restart starts empty.

Run with another Python than the project venv's (as `npm run local-stack` does, with the system python3), it answers
--help and usage errors at once, then runs set-up (scripts/setup.sh) and continues in the venv's Python.

Exit 1 when moto stops on its own or a resource cannot be created; 2 for usage (a port in use, no venv); set-up's
status when set-up fails.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
REGION = "eu-west-1"
#: moto accepts any credentials unless told otherwise; these say plainly that they are not real ones.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": REGION}
STREAMS = {"vehicles": 2}
SPARK_KEY_SECRET = "pseudonymization/spark-key"
#: Relative to the working directory, as the README runs commands (npm run runs them from the repository root).
SPARK_KEY_FILE = Path("data") / "api-keys" / "spark.key"

EXAMPLES = """examples:
  npm run local-stack                      # moto on http://127.0.0.1:5000, stream and secret created
  npm run local-stack -- --port 5055       # another port (then edit source.endpointUrl in examples/stream.json)"""


def say(message: str) -> None:
    print(f"local-stack: {message}", file=sys.stderr, flush=True)


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_for(endpoint: str, server: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
            return
        except (urllib.error.URLError, OSError):
            if server.poll() is not None:
                raise RuntimeError(f"moto exited with status {server.returncode} while starting") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto did not answer on {endpoint} within {seconds:.0f} s") from None
            time.sleep(0.2)


def create_resources(endpoint: str) -> list[str]:
    """The examples' stream(s) and secret; returns what was done, one line each (names, never a secret)."""
    import boto3

    session = boto3.session.Session(
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )
    made = []
    kinesis = session.client("kinesis", endpoint_url=endpoint)
    for name, shards in STREAMS.items():
        kinesis.create_stream(StreamName=name, ShardCount=shards)
        kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        made.append(f"created Kinesis stream {name} ({shards} shards, {REGION})")
    key_file = SPARK_KEY_FILE
    if key_file.is_file():
        secrets = session.client("secretsmanager", endpoint_url=endpoint)
        secrets.create_secret(Name=SPARK_KEY_SECRET, SecretString=key_file.read_text(encoding="utf-8").strip())
        made.append(f"created secret {SPARK_KEY_SECRET} (from {SPARK_KEY_FILE})")
    else:
        made.append(
            f"no secret {SPARK_KEY_SECRET}: {SPARK_KEY_FILE} does not exist yet "
            "(npm run apikeys -- create --name spark --roles pseudonymize, then restart the local stack)"
        )
    return made


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="npm run local-stack --",
        description="moto on 127.0.0.1 with the stream and secret the examples use; Ctrl-C stops it",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=5000, help="moto's port (default 5000, as examples/stream.json)")
    args = parser.parse_args(argv)
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        # `npm run local-stack` starts this file with the system Python, so that --help and a wrong argument are
        # answered above before any set-up; now the venv and the jars (each step only when its inputs changed), then
        # the same command again in the venv's Python, which moto and boto3 need.
        setup = subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh")], check=False)
        if setup.returncode != 0:
            return setup.returncode
        os.execv(PYTHON, [str(PYTHON), str(Path(__file__).resolve()), *argv])
    if not PYTHON.exists():
        say(f"no project venv at {PYTHON.relative_to(ROOT)}: run npm run setup first")
        return 2
    if port_in_use(args.port):
        say(f"something already listens on 127.0.0.1:{args.port}: stop it, or pass --port N")
        return 2

    endpoint = f"http://127.0.0.1:{args.port}"
    environment = {
        **os.environ,
        **CREDENTIALS,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "test" / "python"), os.environ.get("PYTHONPATH")) if p),
    }
    say(f"starting moto on {endpoint}")
    started = time.monotonic()
    server = subprocess.Popen(
        [str(PYTHON), "-m", "test_support.local_moto", "-H", "127.0.0.1", "-p", str(args.port)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches this script only; it stops moto itself
    )
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        wait_for(endpoint, server)
        made = create_resources(endpoint)
    except Exception as error:
        say(f"cannot set up the local stack: {type(error).__name__}: {error}")
        server.terminate()
        server.wait(timeout=10)
        return 1
    exports = " ".join(f"{name}={value}" for name, value in CREDENTIALS.items())
    print(
        "\n".join(
            [
                f"local stack ready in {time.monotonic() - started:.0f} s: moto on {endpoint} "
                "(Kinesis, Secrets Manager, KMS, S3, EMR, DynamoDB, ...)",
                *(f"  {line}" for line in made),
                "in another shell, from the repository root:",
                f"  export {exports} AWS_DEFAULT_REGION={REGION}",
                f"  export AWS_ENDPOINT_URL={endpoint} PSEUDO_AWS_ENDPOINT={endpoint}",
                "Ctrl-C stops it (everything is in memory)",
            ]
        ),
        flush=True,
    )
    while not stopping and server.poll() is None:
        time.sleep(0.2)
    if not stopping:
        say(f"moto stopped on its own (status {server.returncode})")
        return 1
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
