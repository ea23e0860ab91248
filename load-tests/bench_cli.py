"""Argument handling shared by the Python benchmarks (STYLE rule 20). argparse answers `--help` (exit 0) and refuses
an unknown argument with the usage (exit 2); this adds the house layout of the help: what the benchmark measures,
how long it takes, the environment variables it reads and examples. Called before any work starts."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def parse_arguments(
    command: str,
    measures: str,
    duration: str,
    environment: Sequence[tuple[str, str]] = (),
    examples: Sequence[str] = (),
    argv: Sequence[str] | None = None,
) -> argparse.Namespace:
    """Parses argv (no options of its own yet); exits 0 after `--help`, 2 with the usage on anything unknown."""
    width = max((len(name) for name, _ in environment), default=0)
    epilog = [f"takes: {duration}"]
    if environment:
        epilog += ["", "environment:", *(f"  {name.ljust(width)}  {text}" for name, text in environment)]
    epilog += ["", "examples:", *(f"  {example}" for example in examples)]
    epilog += ["", "exit status: 0 done, 1 the run failed, 2 usage error"]
    parser = argparse.ArgumentParser(
        prog=command,
        description=measures,
        epilog="\n".join(epilog),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser.parse_args(argv)
