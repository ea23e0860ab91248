"""The shipped wheels: built from each package offline (the venv's setuptools, no build isolation, no index),
installed into a fresh venv outside the checkout, they hold no test code, import without the repository and
run each job's --help. Their dependencies (pyspark, pyarrow, boto3...) come from the project venv's
site-packages, added to the fresh venv's path by a .pth file: the project's own packages there are editable
installs, whose hooks a plain path entry does not run, so only the wheels can provide them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"spark-udfs": "spark_udfs", "stream-consumer": "stream_consumer"}


def console_scripts() -> list[str]:
    """Every [project.scripts] entry of both packages: a job added there is checked here without a second list."""
    scripts: list[str] = []
    for package in PACKAGES:
        with (ROOT / package / "pyproject.toml").open("rb") as pyproject:
            scripts.extend(tomllib.load(pyproject)["project"]["scripts"])
    return sorted(scripts)


CONSOLE_SCRIPTS = console_scripts()

#: File names and folders that are test code: none may be in a wheel.
TEST_CODE_NAMES = {"testing.py", "local_moto.py", "conftest.py"}
TEST_CODE_FOLDERS = {"tests", "test_support"}
#: pip without the network: nothing fetched, dependencies left alone.
OFFLINE = ("--no-deps", "--no-index", "--disable-pip-version-check")


def build_wheel(package: str, work: Path, out: Path) -> Path:
    """Builds from a copy of the package's sources, so the build leaves nothing in the checkout."""
    source = work / package
    leftovers = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "tests")
    shutil.copytree(ROOT / package, source, ignore=leftovers)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", *OFFLINE, "--no-build-isolation", "--wheel-dir", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    return next(out.glob(f"{PACKAGES[package]}-*.whl"))


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("wheel-sources")
    out = tmp_path_factory.mktemp("wheels")
    return {package: build_wheel(package, work, out) for package in PACKAGES}


@pytest.fixture(scope="module")
def fresh_venv(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("fresh-venv")
    assert not home.is_relative_to(ROOT)
    venv.EnvBuilder(with_pip=True, clear=True).create(home)
    python = home / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", *OFFLINE, *map(str, wheels.values())],
        check=True,
        capture_output=True,
    )
    site_packages = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site_packages / "project-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    yield home


def run_in(home: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Runs from a folder outside the checkout, with no PYTHONPATH: only the fresh venv's packages."""
    environment = {"PATH": f"{home / 'bin'}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
    return subprocess.run(command, cwd=home, env=environment, capture_output=True, text=True, timeout=300)


def test_the_wheels_hold_no_test_code(wheels: dict[str, Path]) -> None:
    for package, wheel in wheels.items():
        names = zipfile.ZipFile(wheel).namelist()
        assert any(name.startswith(f"{PACKAGES[package]}/") and name.endswith("py.typed") for name in names)
        for name in names:
            parts = name.split("/")
            assert parts[-1] not in TEST_CODE_NAMES, f"{wheel.name} holds {name}"
            assert not name.endswith(".ts"), f"{wheel.name} holds {name} (the producer is not part of the package)"
            assert not TEST_CODE_FOLDERS & set(parts[:-1]), f"{wheel.name} holds {name}"


def test_every_module_imports_from_the_wheels_without_the_repository(fresh_venv: Path) -> None:
    listing = run_in(
        fresh_venv,
        str(fresh_venv / "bin" / "python"),
        "-c",
        "import importlib, pkgutil, spark_udfs, stream_consumer\n"
        "for package in (spark_udfs, stream_consumer):\n"
        "    for module in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        importlib.import_module(module.name)\n"
        "    print(package.__file__)\n",
    )
    assert listing.returncode == 0, listing.stderr[-2000:]
    files = listing.stdout.split()
    assert len(files) == 2
    assert all(Path(file).is_relative_to(fresh_venv) for file in files), files
    for package in PACKAGES.values():
        for source in (Path(files[0]).parent.parent / package).rglob("*.py"):
            assert str(ROOT) not in source.read_text(encoding="utf-8"), f"{source.name} names the checkout"


@pytest.mark.parametrize("script", CONSOLE_SCRIPTS)
def test_each_job_answers_help_from_the_fresh_venv(fresh_venv: Path, script: str) -> None:
    answer = run_in(fresh_venv, str(fresh_venv / "bin" / script), "--help")
    assert answer.returncode == 0, answer.stderr[-2000:]
    assert answer.stdout.startswith("usage:")
