"""The leaderboard site: only validated packages become rows, rejected ones are listed with reasons, the
page loads nothing from the network, and in a real headless Chromium its table sorts on header clicks."""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from typer.testing import CliRunner

from conftest import build_tiny_world
from mmsearch_gym.agents.baselines import NoSearchAgent, OracleAgent, RAGWorkflowAgent, ScriptedAgent
from mmsearch_gym.benchmarks.leaderboard import build_leaderboard
from mmsearch_gym.benchmarks.runner import RunSpec, evaluate
from mmsearch_gym.benchmarks.submission import pack_submission
from mmsearch_gym.benchmarks.validate import PinnedSuite
from test_submission import CARD, SCRIPT, _cli, _pinned_files

CACHE_HASH = "c" * 64
REFERENCE = {"random guess": {"episodes": 2, "accuracy": 0.25, "search_ratio": 0.75, "searches_per_episode": 1.5,
                              "image_searches": 2, "text_searches": 1,
                              "by_category": {"search_free": {"accuracy": 0.5}, "search_required": {"accuracy": 0.0}}}}
# agent name -> (accuracy, search ratio) that the tiny world gives each submission below
EXPECTED = {"oracle <b>7B</b>": (1.0, 0.5), "scripted": (0.5, 0.5), "no-search": (0.5, 0.0),
            "random guess": (0.25, 0.75), "rag": (0.0, 1.0)}


def _submissions(tmp_path: Path) -> tuple[Path, PinnedSuite]:
    samples, backend = build_tiny_world()
    spec = RunSpec(samples, backend, cache_bundle_hash=CACHE_HASH)
    folder = tmp_path / "submissions"
    for file_name, agent in (("oracle", OracleAgent(samples)), ("scripted", ScriptedAgent(SCRIPT)),
                             ("no-search", NoSearchAgent()), ("rag", RAGWorkflowAgent())):
        evaluate(agent, spec, tmp_path / "runs" / file_name)
        name = "oracle <b>7B</b>" if file_name == "oracle" else file_name
        pack_submission(tmp_path / "runs" / file_name, folder / f"{file_name}.zip", {**CARD, "name": name})
    with zipfile.ZipFile(folder / "oracle.zip") as source, \
            zipfile.ZipFile(folder / "zz-tampered.zip", "w") as target:
        for name in source.namelist():
            data = source.read(name)
            target.writestr(name, data.replace(b'"reward":0.91', b'"reward":1.0') if name == "episodes.jsonl" else data)
    (folder / "README.txt").write_text("not a package")
    return folder, PinnedSuite.from_spec(spec)


def _rows(page_data: dict[str, Any]) -> list[str]:
    return [row["agent"] for row in page_data["rows"]]


def test_site_lists_valid_rows_rejects_tampered_and_loads_nothing(tmp_path):
    folder, pinned = _submissions(tmp_path)
    board = build_leaderboard(folder, tmp_path / "site", REFERENCE, suite=pinned, price_per_1k=30.0)
    data = json.loads(board.data.read_text())
    assert _rows(data) == ["oracle <b>7B</b>", "no-search", "scripted", "random guess", "rag"]
    by_agent = {row["agent"]: row for row in data["rows"]}
    assert {agent: (row["accuracy"], row["search_ratio"]) for agent, row in by_agent.items()} == EXPECTED
    assert by_agent["random guess"]["reference"] and not by_agent["rag"]["reference"]
    assert by_agent["rag"]["searches"] == 4 and by_agent["rag"]["search_cost_usd"] == pytest.approx(0.12)
    assert by_agent["oracle <b>7B</b>"]["by_category"] == {"search_free": 1.0, "search_required": 1.0}
    assert data["categories"] == ["search_free", "search_required"]
    assert [entry["submission"] for entry in data["rejected"]] == ["zz-tampered.zip"]
    assert "episode 0 (rbs-year): field 'reward' is 1.0 but the replay gives 0.91" in data["rejected"][0]["reasons"]

    page = board.page.read_text()
    assert "zz-tampered.zip" in page and "field &#x27;reward&#x27; is 1.0" in page
    assert "<b>7B</b>" not in page and "oracle &lt;b&gt;7B&lt;/b&gt;" in page  # escaped, in HTML and inline JSON
    assert not re.search(r"\b(src|href)\s*=", page) and "<link" not in page
    assert "http://" not in page and "https://" not in page and "default-src 'none'" in page
    assert page.count("<circle") == 5 and "Accuracy: search free" in page


def test_build_refuses_bad_arguments(tmp_path):
    folder, pinned = _submissions(tmp_path)
    with pytest.raises(ValueError, match="baseline 'x': metrics field 'accuracy' must be a number >= 0, got 'high'"):
        build_leaderboard(folder, tmp_path / "site", {"x": {**REFERENCE["random guess"], "accuracy": "high"}},
                          suite=pinned)
    with pytest.raises(ValueError, match="price_per_1k must be a finite number >= 0.*got -1"):
        build_leaderboard(folder, tmp_path / "site", suite=pinned, price_per_1k=-1)
    with pytest.raises(ValueError, match="submissions directory .*nowhere"):
        build_leaderboard(tmp_path / "nowhere", tmp_path / "site", suite=pinned)


def test_leaderboard_build_command(tmp_path, monkeypatch):
    monkeypatch.setenv("MMSEARCH_GYM_HOME", str(tmp_path / "home"))
    suite, bundle, spec = _pinned_files(tmp_path)
    evaluate(ScriptedAgent(SCRIPT), spec, tmp_path / "run")
    pack_submission(tmp_path / "run", tmp_path / "subs" / "scripted.zip", CARD)
    (tmp_path / "subs" / "broken.zip").write_bytes(b"garbage")
    evaluate(NoSearchAgent(), spec, tmp_path / "baseline")
    result = CliRunner().invoke(_cli(), [
        "leaderboard", "build", str(tmp_path / "subs"), "--out", str(tmp_path / "site"), "--suite", str(suite),
        "--cache", str(bundle), "--baseline", f"no search={tmp_path / 'baseline'}", "--price-per-1k", "20"])
    assert result.exit_code == 0, result.output
    assert "1 accepted, 1 rejected" in result.output and "broken.zip" in result.output
    data = json.loads((tmp_path / "site" / "data.json").read_text())
    assert _rows(data) == ["no search", "tester"] and data["price_per_1k_calls_usd"] == 20.0


# -- in a real browser ------------------------------------------------------------------------------------

BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync")


REQUIRE_BROWSER = "MMSEARCH_GYM_REQUIRE_BROWSER"
"""Set to 1 (CI does, after installing the browser packages) to fail instead of skip without a browser."""
BROWSER_HINT = "Debian/Ubuntu: apt-get install chromium chromium-driver, as .ci/apt-packages lists"


Lookup = Callable[[str], Optional[str]]


def _found(names: tuple[str, ...], fallback: str, which: Lookup, exists: Callable[[str], bool]) -> str | None:
    for name in names:
        found = which(name)
        if found:
            return found
    return fallback if exists(fallback) else None


def _browser(which: Lookup = shutil.which, exists: Callable[[str], bool] = os.path.exists) -> tuple[str, str]:
    """(chromium, chromedriver) paths; without both, skip naming what is missing and what did not
    run, or fail where the environment promises a browser (REQUIRE_BROWSER)."""
    chromium = _found(("chromium", "chromium-browser"), "/usr/bin/chromium", which, exists)
    driver = _found(("chromedriver",), "/usr/bin/chromedriver", which, exists)
    if chromium is not None and driver is not None:
        return chromium, driver
    missing = " and ".join(name for name, path in (("chromium", chromium), ("chromedriver", driver)) if path is None)
    message = (f"{missing} not found, so the leaderboard page's table sorting was not checked in a real browser "
               f"({BROWSER_HINT})")
    if os.environ.get(REQUIRE_BROWSER) == "1":
        pytest.fail(f"{REQUIRE_BROWSER}=1 but {message}", pytrace=False)
    pytest.skip(message)


def test_browser_check_skips_or_fails_with_a_reason_naming_the_missing_binary(monkeypatch):
    chromium_only: Lookup = lambda name: "/opt/chromium" if name == "chromium" else None  # noqa: E731
    monkeypatch.delenv(REQUIRE_BROWSER, raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromedriver not found.*apt-get install chromium chromium-driver"):
        _browser(chromium_only, lambda path: False)
    assert _browser(chromium_only, lambda path: path == "/usr/bin/chromedriver") == (
        "/opt/chromium", "/usr/bin/chromedriver")
    monkeypatch.setenv(REQUIRE_BROWSER, "1")
    with pytest.raises(pytest.fail.Exception, match=f"{REQUIRE_BROWSER}=1 but chromedriver not found"):
        _browser(chromium_only, lambda path: False)
    with pytest.raises(pytest.fail.Exception, match="chromium and chromedriver not found"):
        _browser(lambda name: None, lambda path: False)


def test_table_sorts_on_header_clicks_in_headless_chromium(tmp_path):
    chromium, driver_path = _browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    folder, pinned = _submissions(tmp_path)
    board = build_leaderboard(folder, tmp_path / "site", REFERENCE, suite=pinned)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        driver.get(board.page.resolve().as_uri())

        def order() -> list[str]:
            return [row.find_element(By.CSS_SELECTOR, "td").get_attribute("data-value")
                    for row in driver.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")]

        def click(key: str) -> str:
            header = driver.find_element(By.CSS_SELECTOR, f'#leaderboard th[data-key="{key}"]')
            header.click()
            return header.get_attribute("aria-sort")

        initial = order()
        assert initial == ["oracle <b>7B</b>", "no-search", "scripted", "random guess", "rag"]
        ratio = {agent: value[1] for agent, value in EXPECTED.items()}
        assert click("search_ratio") == "ascending"
        assert order() == sorted(initial, key=lambda agent: ratio[agent]) == [
            "no-search", "oracle <b>7B</b>", "scripted", "random guess", "rag"]
        assert click("search_ratio") == "descending"
        assert order() == sorted(initial, key=lambda agent: -ratio[agent])
        assert click("agent") == "ascending"
        assert order() == sorted(initial, key=str.lower)
        assert driver.find_element(By.CSS_SELECTOR, 'th[data-key="accuracy"]').get_attribute("aria-sort") == "none"
        assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
        assert len(driver.find_elements(By.CSS_SELECTOR, "#scatter circle")) == 5
        reference = driver.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr.reference")
        assert [row.find_element(By.CSS_SELECTOR, "td").get_attribute("data-value") for row in reference] == [
            "random guess"]
    finally:
        driver.quit()
