"""The shipped CQI table: fresh against the CSVs, honest in its figures, licensed."""

from __future__ import annotations

import csv
import fnmatch
import importlib.util
import json
import statistics
import tomllib
from types import ModuleType
from typing import Any

from kai_bridge.knowledge import KnowledgeBase
from kai_bridge.knowledge.cqi import COUNTRY_NAMES, PROCESS_NAMES, CqiTable
from tests.knowledge.support import REPO

# The source CSVs ship with the tests (MIT, with their notice and SOURCE.md): no sibling folder.
CQI_DIR = REPO / "tests" / "data" / "cqi"
SHIPPED = REPO / "kai_bridge" / "knowledge" / "data"


def _build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_cqi", REPO / "scripts" / "build_cqi.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_source_csvs_ship_in_the_repo_with_their_mit_notice() -> None:
    for name in ("arabica_data_cleaned.csv", "robusta_data_cleaned.csv", "LICENSE", "SOURCE.md"):
        assert (CQI_DIR / name).is_file(), name
    assert "Copyright (c) 2018 James LeDoux" in (CQI_DIR / "LICENSE").read_text(encoding="utf-8")


def test_shipped_table_matches_a_fresh_computation_from_the_csvs() -> None:
    build = _build_script()
    fresh = build.render(build.compute(cqi_dir=CQI_DIR))
    shipped = (SHIPPED / "cqi_stats.json").read_text(encoding="utf-8")
    assert shipped == fresh, "kai_bridge/knowledge/data/cqi_stats.json is stale: run scripts/build_cqi.py"
    assert (SHIPPED / "LICENSE-CQI").read_text(encoding="utf-8") == build.license_text(cqi_dir=CQI_DIR)


def test_ethiopia_figures_agree_with_a_plain_reading_of_the_csv() -> None:
    with (CQI_DIR / "arabica_data_cleaned.csv").open(encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["Country.of.Origin"] == "Ethiopia"]
    totals = [float(r["Total.Cup.Points"]) for r in rows]
    figure = CqiTable.load_shipped().figure(kind="country", key="Ethiopia", language="en")
    assert figure is not None
    assert figure.samples == len(rows) == 44
    assert figure.total_cup_points_mean == round(statistics.fmean(totals), 2)
    assert figure.total_cup_points_median == round(statistics.median(totals), 2)
    assert figure.attributes["aroma"] == round(statistics.fmean(float(r["Aroma"]) for r in rows), 2)


def test_altitudes_are_within_the_sanity_bounds() -> None:
    data: dict[str, Any] = json.loads((SHIPPED / "cqi_stats.json").read_text(encoding="utf-8"))
    for group in ("countries", "processes"):
        for name, stats in data[group].items():
            alt = stats["altitude"]
            if alt["samples"]:
                assert 100 <= alt["min_m"] <= alt["p10_m"] <= alt["p90_m"] <= alt["max_m"] <= 3500, name


def test_species_split_adds_up_to_the_sample_count() -> None:
    data: dict[str, Any] = json.loads((SHIPPED / "cqi_stats.json").read_text(encoding="utf-8"))
    for stats in data["countries"].values():
        assert sum(stats["species"].values()) == stats["samples"]
    assert data["countries"]["India"]["species"] == {"Arabica": 1, "Robusta": 13}


def test_license_notice_ships_with_the_table() -> None:
    notice = (SHIPPED / "LICENSE-CQI").read_text(encoding="utf-8")
    assert "Copyright (c) 2018 James LeDoux" in notice
    assert "Permission is hereby granted, free of charge" in notice
    assert "derived" in notice


def test_every_country_and_process_in_the_table_has_a_chinese_name() -> None:
    table = CqiTable.load_shipped()
    assert set(table.countries) <= COUNTRY_NAMES.keys()
    assert set(table.processes) - {"Other"} <= PROCESS_NAMES.keys()


def test_every_article_cqi_reference_exists_in_the_table(kb: KnowledgeBase) -> None:
    table = kb.cqi
    bad = [
        f"{a.id}: {kind} {key!r}"
        for a in kb.index.articles
        for kind, key in (("country", a.cqi_country), ("process", a.cqi_process))
        if key and not table.has(kind=kind, key=key)  # type: ignore[arg-type]
    ]
    assert not bad, f"articles name CQI values the table lacks: {bad}"


def test_shipped_data_files_are_declared_as_package_data() -> None:
    # The base must work from an installed wheel, where only declared package data exists.
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["kai_bridge"]
    package = REPO / "kai_bridge"
    files = [*(package / "knowledge" / "data").iterdir(), *(package / "knowledge" / "corpus").rglob("*.toml")]
    undeclared = [
        str(path.relative_to(package))
        for path in files
        if not any(
            fnmatch.fnmatch(str(path.relative_to(package)), p) or fnmatch.fnmatch(path.name, p) for p in patterns
        )
    ]
    assert not undeclared, f"not matched by [tool.setuptools.package-data]: {undeclared}"


def test_figure_summary_is_written_in_the_requested_language() -> None:
    table = CqiTable.load_shipped()
    zh = table.figure(kind="country", key="Kenya", language="zh")
    en = table.figure(kind="country", key="Kenya", language="en")
    assert zh is not None
    assert en is not None
    assert zh.label == "肯尼亚"
    assert "总分均值" in zh.summary
    assert en.label == "Kenya"
    assert "mean total cup score" in en.summary
