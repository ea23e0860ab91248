"""The EMR route of issue 18: each job's entry script runs under `spark-submit` as a file, with the package
coming only from the zips on `--py-files` that `npm run package` built, exactly as the manifest's spark-submit
arguments (the ones `npm run infra -- submit` and the EMR runner send) describe. The old route stopped with
"attempted relative import with no known parent package"; this checks it cannot come back.

How "only from --py-files" is made sure of: spark-submit runs the driver with a fresh venv's interpreter
(PYSPARK_DRIVER_PYTHON / PYSPARK_PYTHON) whose path reaches the project venv's site-packages through a .pth
line. The project's own packages are editable installs there, whose import hooks a plain path entry does not
run, so the fresh interpreter cannot import spark_udfs or stream_consumer (asserted first); no PYTHONPATH, the
working folder outside the checkout. The same command without --py-files fails with ModuleNotFoundError.

Local mode runs the driver in client mode: Spark refuses cluster deploy mode for Python on a local master. In
cluster mode on YARN the driver's container gets the same entry file and zips (spark-submit ships them) and runs
the same `python <entry>` with the zips on its path, which is what is exercised here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYSPARK_HOME = Path(sysconfig.get_path("purelib")) / "pyspark"
JOBS = ("batch", "stream", "erasure")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dist/spark as `npm run package` builds it, into a temporary folder."""
    out = tmp_path_factory.mktemp("spark-dist")
    built = subprocess.run(
        [str(ROOT / "node_modules" / ".bin" / "tsx"), "scripts/package.ts", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An interpreter that has pyspark and the packages' dependencies, but neither of the project's packages."""
    home = tmp_path_factory.mktemp("bare-venv")
    assert not home.is_relative_to(ROOT)
    venv.EnvBuilder(with_pip=False, clear=True).create(home)
    python = home / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "project-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    return python


def environment(python: Path, home: Path) -> dict[str, str]:
    """No PYTHONPATH, no checkout on any path: only what the command line ships."""
    env = {
        "PATH": f"{python.parent}:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "SPARK_HOME": str(PYSPARK_HOME),
        "PYSPARK_PYTHON": str(python),
        "PYSPARK_DRIVER_PYTHON": str(python),
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    if "JAVA_HOME" in os.environ:
        env["JAVA_HOME"] = os.environ["JAVA_HOME"]
    return env


def local_command(artifacts: Path, job: str, *, with_py_files: bool = True) -> list[str]:
    """The manifest's spark-submit arguments for the job, made local: its files from the artifacts folder instead
    of s3://…/spark/<sha256>/, a local master in client mode, and --help instead of the job's own arguments."""
    manifest = json.loads((artifacts / "manifest.json").read_text(encoding="utf-8"))
    recorded: list[str] = manifest["jobs"][job]["sparkSubmit"]
    located = [re.sub(r"\{artifacts\}/[0-9a-f]{64}/", f"{artifacts}/", arg) for arg in recorded]
    entry = str(artifacts / manifest["jobs"][job]["entry"])
    assert recorded[:3] == ["spark-submit", "--deploy-mode", "cluster"]
    options = located[3 : located.index(entry)]
    if not with_py_files:
        at = options.index("--py-files")
        del options[at : at + 2]
    else:
        expected = ",".join(str(artifacts / name) for name in manifest["jobs"][job]["pyFiles"])
        assert options[options.index("--py-files") + 1] == expected
    spark_submit = str(PYSPARK_HOME / "bin" / "spark-submit")
    return [spark_submit, "--master", "local[1]", "--deploy-mode", "client", *options, entry, "--help"]


def test_the_bare_interpreter_cannot_import_the_packages(bare_python: Path, tmp_path: Path) -> None:
    probe = subprocess.run(
        [str(bare_python), "-c", "import pyspark, requests\nimport spark_udfs"],
        cwd=tmp_path,
        env=environment(bare_python, tmp_path),
        capture_output=True,
        text=True,
    )
    assert probe.returncode != 0
    assert "No module named 'spark_udfs'" in probe.stderr, probe.stderr[-2000:]


@pytest.mark.parametrize("job", JOBS)
def test_each_entry_script_runs_under_spark_submit_from_the_zips(
    artifacts: Path, bare_python: Path, tmp_path: Path, job: str
) -> None:
    answer = subprocess.run(
        local_command(artifacts, job),
        cwd=tmp_path,
        env=environment(bare_python, tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "attempted relative import" not in answer.stdout + answer.stderr
    assert answer.returncode == 0, answer.stderr[-3000:]
    assert answer.stdout.startswith("usage:"), answer.stdout[-2000:]


def test_without_py_files_the_entry_script_finds_no_package(artifacts: Path, bare_python: Path, tmp_path: Path) -> None:
    answer = subprocess.run(
        local_command(artifacts, "batch", with_py_files=False),
        cwd=tmp_path,
        env=environment(bare_python, tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert answer.returncode != 0
    # spark-submit passes the Python driver's stderr on through its own stdout.
    output = answer.stdout + answer.stderr
    assert "No module named 'spark_udfs'" in output, output[-3000:]
