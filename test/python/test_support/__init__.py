"""Support code for the Python tests and benchmarks (never shipped: it lives outside both packages' `src/`).

`servers`: the API server, moto's server and a fault-injecting proxy on free 127.0.0.1 ports;
`local_moto`: the moto launcher those tests (and the TypeScript tests) start; `streaming`: the streaming
job as a child process, Kinesis puts and pyiceberg reads; `spark`: test-only Spark settings.

Importable once `test/python` is on `sys.path`: both packages' conftest.py and the load tests put it there,
and child processes get it through `PYTHONPATH` (see `servers.moto_server`)."""

from __future__ import annotations

from pathlib import Path

#: The repository checkout (the API's dist/, the venv, the policy fixtures).
ROOT = Path(__file__).resolve().parents[3]
#: The folder to put on sys.path / PYTHONPATH for `import test_support`.
SUPPORT_PATH = Path(__file__).resolve().parents[1]
