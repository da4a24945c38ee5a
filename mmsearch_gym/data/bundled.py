"""The suites shipped inside the package: `synth-mini` (test split, the default) and
`synth-mini-train`, each with the recorded search cache bundle that strict replay uses.

They are built by `mmsearch-gym data synth` (see `benchmarks.suite_builder`) with the default seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from mmsearch_gym.data.sample import VQASample
from mmsearch_gym.data.suite_io import read_suite
from mmsearch_gym.data.suites import register_suite

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
SYNTH_MINI_DIR = BUNDLED_DIR / "synth-mini"
SYNTH_MINI_CACHE = SYNTH_MINI_DIR / "cache.zip"


def _split_reader(split: str) -> Callable[[], tuple[VQASample, ...]]:
    """A loader for one split, read (and hash-verified) only when the suite is used."""
    def read() -> tuple[VQASample, ...]:
        return read_suite(SYNTH_MINI_DIR / split)
    return read


def register_bundled_suites() -> None:
    if not SYNTH_MINI_DIR.is_dir():  # a trimmed installation without package data
        return
    for name, split in (("synth-mini", "test"), ("synth-mini-train", "train")):
        register_suite(name, _split_reader(split), cache_bundle=SYNTH_MINI_CACHE)
