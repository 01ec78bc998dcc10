#!/usr/bin/env python3
"""Derive the CQI statistics table that ships inside the package.

Reads the two Coffee Quality Institute review CSVs (``tests/data/cqi`` in this repo, MIT, scraped in
January 2018 by jldbc/coffee-quality-database) and writes
``kai_bridge/knowledge/data/cqi_stats.json`` plus ``LICENSE-CQI`` (the MIT notice with a line
saying what was derived). The package never reads the CSVs at run time; this script is run by
hand when the derivation changes, and ``tests/knowledge/test_cqi_table.py`` fails when the
shipped table no longer matches a fresh computation.

    python scripts/build_cqi.py            # write the table
    python scripts/build_cqi.py --check    # exit 1 if the shipped table is stale

Choices, also written into the table's ``method`` block:

- A row whose Total.Cup.Points is 0 is a blank review (one Honduras row) and is dropped.
- Altitude uses ``altitude_mean_meters`` kept only within 100-3500 m: the raw data has unit
  errors (feet read as metres, 190164 m, 1 m). The range is reported as p10-p90 (inclusive
  linear interpolation) and as min-max of the kept values.
- Robusta reviews use a different form: Fragrance/Aroma -> aroma, Mouthfeel -> body,
  Uniform.Cup -> uniformity; their Salt/Acid and Bitter/Sweet ratios are not acidity or
  sweetness, so acidity and sweetness means are over Arabica rows only.
- Varieties: blank and "Other" are not named varieties and are left out of the top 3.
- Processing methods: blank means "not recorded" and gets no per-process entry.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CQI_DIR = REPO / "tests" / "data" / "cqi"
OUT_DIR = REPO / "kai_bridge" / "knowledge" / "data"
OUT_TABLE = OUT_DIR / "cqi_stats.json"
OUT_LICENSE = OUT_DIR / "LICENSE-CQI"

ALTITUDE_BOUNDS_M = (100.0, 3500.0)
ATTRIBUTES = (
    "aroma",
    "flavor",
    "aftertaste",
    "acidity",
    "body",
    "balance",
    "sweetness",
    "uniformity",
    "clean_cup",
    "cupper_points",
)
# CSV column per attribute and species; a missing entry means "not on that species' form".
_COLUMNS: dict[str, dict[str, str]] = {
    "Arabica": {
        "aroma": "Aroma",
        "flavor": "Flavor",
        "aftertaste": "Aftertaste",
        "acidity": "Acidity",
        "body": "Body",
        "balance": "Balance",
        "sweetness": "Sweetness",
        "uniformity": "Uniformity",
        "clean_cup": "Clean.Cup",
        "cupper_points": "Cupper.Points",
    },
    "Robusta": {
        "aroma": "Fragrance...Aroma",
        "flavor": "Flavor",
        "aftertaste": "Aftertaste",
        "body": "Mouthfeel",
        "balance": "Balance",
        "uniformity": "Uniform.Cup",
        "clean_cup": "Clean.Cup",
        "cupper_points": "Cupper.Points",
    },
}
NOT_VARIETIES = frozenset({"", "Other"})
SOURCE_LABEL = "Coffee Quality Institute reviews (2018 scrape)"


def _number(text: str) -> float | None:
    text = text.strip()
    if not text or text.upper() == "NA":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def read_rows(*, cqi_dir: Path) -> list[dict[str, str]]:
    """Both CSVs as dict rows, each tagged with its species (the file it came from)."""
    rows: list[dict[str, str]] = []
    for species, name in (("Arabica", "arabica_data_cleaned.csv"), ("Robusta", "robusta_data_cleaned.csv")):
        with (cqi_dir / name).open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                row["Species"] = species
                rows.append(row)
    return rows


def _r(value: float) -> float:
    return round(value, 2)


def _group_stats(rows: Sequence[Mapping[str, str]], *, with_processes: bool) -> dict[str, Any]:
    totals = [t for r in rows if (t := _number(r["Total.Cup.Points"])) is not None]
    attributes: dict[str, float] = {}
    for attribute in ATTRIBUTES:
        values = [
            v
            for r in rows
            if (column := _COLUMNS[r["Species"]].get(attribute)) and (v := _number(r[column])) is not None
        ]
        if values:
            attributes[attribute] = _r(statistics.fmean(values))
    varieties = Counter(r["Variety"].strip() for r in rows if r["Variety"].strip() not in NOT_VARIETIES)
    low, high = ALTITUDE_BOUNDS_M
    altitudes = sorted(a for r in rows if (a := _number(r["altitude_mean_meters"])) is not None and low <= a <= high)
    altitude: dict[str, Any] = {"samples": len(altitudes)}
    if altitudes:
        altitude["min_m"] = round(altitudes[0])
        altitude["max_m"] = round(altitudes[-1])
        if len(altitudes) >= 2:
            deciles = statistics.quantiles(altitudes, n=10, method="inclusive")
            altitude["p10_m"] = round(deciles[0])
            altitude["p90_m"] = round(deciles[-1])
        else:
            altitude["p10_m"] = altitude["p90_m"] = round(altitudes[0])
    stats: dict[str, Any] = {
        "samples": len(rows),
        "species": dict(sorted(Counter(r["Species"] for r in rows).items())),
        "total_cup_points": {
            "mean": _r(statistics.fmean(totals)),
            "median": _r(statistics.median(totals)),
            "min": _r(min(totals)),
            "max": _r(max(totals)),
        },
        "attributes": attributes,
        "varieties": [{"name": n, "count": c} for n, c in _top(varieties, 3)],
        "varieties_recorded": sum(varieties.values()),
        "altitude": altitude,
    }
    if with_processes:
        processes = Counter(r["Processing.Method"].strip() for r in rows if r["Processing.Method"].strip())
        stats["processing"] = [{"name": n, "count": c} for n, c in _top(processes, 5)]
    return stats


def _top(counter: Counter[str], k: int) -> list[tuple[str, int]]:
    # Ties broken by name so the table is stable across Python versions.
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:k]


def _groups(rows: Iterable[dict[str, str]], *, column: str) -> dict[str, list[dict[str, str]]]:
    groups: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        key = row[column].strip()
        if key:
            groups.setdefault(key, []).append(row)
    return dict(sorted(groups.items()))


def compute(*, cqi_dir: Path) -> dict[str, Any]:
    """The whole derived table, as plain JSON-able data (deterministic for the same CSVs)."""
    raw = read_rows(cqi_dir=cqi_dir)
    rows = [r for r in raw if _number(r["Total.Cup.Points"]) not in (None, 0.0)]
    return {
        "source": {
            "label": SOURCE_LABEL,
            "name": "Coffee Quality Institute (CQI) coffee reviews",
            "scraped": "2018-01",
            "repository": "https://github.com/jldbc/coffee-quality-database",
            "commit": "e3b22b2",
            "files": ["data/arabica_data_cleaned.csv", "data/robusta_data_cleaned.csv"],
            "license": "MIT, Copyright (c) 2018 James LeDoux (see LICENSE-CQI)",
        },
        "method": {
            "dropped_rows": len(raw) - len(rows),
            "dropped_reason": "Total.Cup.Points missing or 0 (blank review)",
            "altitude": (
                f"altitude_mean_meters kept within {ALTITUDE_BOUNDS_M[0]:.0f}-{ALTITUDE_BOUNDS_M[1]:.0f} m "
                "(the raw data has unit errors); p10_m/p90_m are the 10th/90th percentiles "
                "(inclusive linear interpolation) and min_m/max_m the extremes of the kept values"
            ),
            "attributes": (
                "means on the 0-10 cupping scale; Robusta forms map Fragrance/Aroma->aroma, "
                "Mouthfeel->body, Uniform.Cup->uniformity; acidity and sweetness are Arabica-only"
            ),
            "varieties": "top 3 named varieties; blank and 'Other' are not counted",
        },
        "samples": len(rows),
        "species": dict(sorted(Counter(r["Species"] for r in rows).items())),
        "countries": {
            name: _group_stats(group, with_processes=True)
            for name, group in _groups(rows, column="Country.of.Origin").items()
        },
        "processes": {
            name: _group_stats(group, with_processes=False)
            for name, group in _groups(rows, column="Processing.Method").items()
        },
    }


def render(table: Mapping[str, Any]) -> str:
    return json.dumps(table, ensure_ascii=False, indent=1, sort_keys=True) + "\n"


def license_text(*, cqi_dir: Path) -> str:
    notice = (cqi_dir / "LICENSE").read_text(encoding="utf-8").rstrip("\n")
    return (
        "cqi_stats.json in this directory is derived from the Coffee Quality Institute review data\n"
        "scraped by jldbc/coffee-quality-database (commit e3b22b2, data/arabica_data_cleaned.csv and\n"
        "data/robusta_data_cleaned.csv): per-country and per-processing-method sample counts, cup\n"
        "score statistics, attribute means, common varieties, altitude ranges and species split,\n"
        "computed by scripts/build_cqi.py. The original data is under the following license:\n\n"
        f"{notice}\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--cqi-dir", type=Path, default=DEFAULT_CQI_DIR, help="directory with the CQI CSVs")
    parser.add_argument("--check", action="store_true", help="exit 1 if the shipped files are stale")
    args = parser.parse_args(argv)
    table = render(compute(cqi_dir=args.cqi_dir))
    notice = license_text(cqi_dir=args.cqi_dir)
    if args.check:
        stale = [
            str(path)
            for path, text in ((OUT_TABLE, table), (OUT_LICENSE, notice))
            if not path.exists() or path.read_text(encoding="utf-8") != text
        ]
        for path in stale:
            print(f"stale: {path} (run scripts/build_cqi.py)", file=sys.stderr)
        return 1 if stale else 0
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    OUT_TABLE.write_text(table, encoding="utf-8")
    OUT_LICENSE.write_text(notice, encoding="utf-8")
    print(f"wrote {OUT_TABLE.relative_to(REPO)} and {OUT_LICENSE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
