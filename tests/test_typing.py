"""mypy is clean on the four core packages (envs, search, cache, data), checked by the test suite so CI
(which runs only the README's pytest command) keeps them clean: their typed contracts (messages, step
info, search modes and sources) are what the other rooms build on."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mmsearch_gym/envs", "mmsearch_gym/search", "mmsearch_gym/cache", "mmsearch_gym/data")


def test_mypy_is_clean_on_the_core_packages() -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (it is in the `test` extra: pip install -e '.[test]')")
    command = [sys.executable, "-m", "mypy", *PACKAGES, "--ignore-missing-imports", "--follow-imports=silent"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=580)
    assert result.returncode == 0, f"mypy found errors:\n{result.stdout}{result.stderr}"
