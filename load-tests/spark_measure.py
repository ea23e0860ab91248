"""What `bench:spark` measures of a run, shared by its two processes (spark_bench.py and spark_baseline.py): CPU
seconds read from /proc per process tree, and the API's cache counters from its /metrics."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import requests

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds) of every process on the machine: utime + stime of the process and of its
    children it has reaped (a Python worker that exited is counted in the daemon that forked it)."""
    return {pid: (parent, seconds) for pid, (parent, seconds, _) in processes_now().items()}


def processes_now() -> dict[int, tuple[int, float, str]]:
    """pid -> (parent pid, CPU seconds as in cpu_seconds, command name) of every process on the machine."""
    found: dict[int, tuple[int, float, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                text = handle.read()
        except OSError:
            continue  # exited meanwhile
        fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
        name = text[text.index("(") + 1 : text.rindex(")")]
        found[int(entry)] = (int(fields[1]), sum(int(f) for f in fields[11:15]) / TICKS, name)
    return found


@dataclass(frozen=True)
class CpuSplit:
    api: float
    spark: float
    #: The part of `spark` spent in Python processes under Spark's JVM (the daemon and the workers it forked).
    python: float = 0.0


def tree_cpu(server_pid: int) -> CpuSplit:
    """CPU seconds so far of the API server (with anything under it) and of the rest of this process's tree: the
    driver, Spark's JVM and the Python workers under it."""
    processes = processes_now()
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in processes.items():
        children.setdefault(parent, []).append(pid)

    def subtree(pid: int) -> float:
        return processes.get(pid, (0, 0.0, ""))[1] + sum(subtree(child) for child in children.get(pid, []))

    def python_under_java(pid: int, in_java: bool) -> float:
        name = processes.get(pid, (0, 0.0, ""))[2]
        if in_java and name.startswith("python"):
            return subtree(pid)
        inside = in_java or name == "java"
        return sum(python_under_java(child, inside) for child in children.get(pid, []))

    api = subtree(server_pid)
    return CpuSplit(api, subtree(os.getpid()) - api, python_under_java(os.getpid(), False))


def server_pid() -> int:
    """The API server: this process's child running dist/server.mjs (test_support starts it with Popen)."""
    for pid, (parent, _) in cpu_seconds().items():
        if parent != os.getpid():
            continue
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(part.endswith(b"dist/server.mjs") for part in command):
            return pid
    raise RuntimeError("the API server process was not found under this process")


def cache_lookups(url: str) -> tuple[int, int]:
    """The API's pseudonymize cache hits and misses since it started (its /metrics)."""
    counts = {"pseudo_cache_hits": 0, "pseudo_cache_misses": 0}
    for line in requests.get(url + "/metrics", timeout=30).text.splitlines():
        name, _, value = line.partition(" ")
        if name in counts:
            counts[name] = int(float(value))
    return counts["pseudo_cache_hits"], counts["pseudo_cache_misses"]
