"""Writes examples/vehicles.csv: 300 made-up vehicle records (no real person, no real VIN), the same bytes on
every run (a fixed seed), so the example batch job's input is small, reviewable and reproducible.

    .venv/bin/python examples/make_vehicles.py          (from the repository root)

Columns: dept_id, vin, customer_id, email, example_ts. A few VINs repeat (as in real data, where one car is
seen many times) and every 50th row has no VIN: a null stays null through the job.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
import sys
from pathlib import Path

ROWS = 300
#: VIN characters: ISO 3779 leaves out I, O and Q.
VIN_CHARACTERS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


def rows() -> list[list[str]]:
    generator = random.Random(20260311)
    vins = ["".join(generator.choice(VIN_CHARACTERS) for _ in range(17)) for _ in range(120)]
    start = dt.datetime(2026, 3, 1, 8, 0, 0)
    out = []
    for index in range(ROWS):
        customer = generator.randrange(1, 90)
        out.append(
            [
                str(10 + index % 7),
                "" if index % 50 == 49 else vins[generator.randrange(len(vins))],
                f"C{customer:05d}",
                f"customer{customer:03d}@example.com",
                (start + dt.timedelta(minutes=17 * index)).strftime("%Y-%m-%dT%H:%M:%S"),
            ]
        )
    return out


def write(path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["dept_id", "vin", "customer_id", "email", "example_ts"])
        writer.writerows(rows())


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("vehicles.csv"))
