"""Loaders for the real benchmarks (FVQA, InfoSeek, InfoSeek sub-2k, MMSearch, SimpleVQA, LiveVQA) from
local files.

Importing this package registers every loader with `mmsearch_gym.data.suites`, so
`gym.make("mmsearch_gym:ImageSearchVQA-v0", dataset=("fvqa", "fvqa_test.parquet"), search=...)` works.
Nothing is downloaded (DESIGN §7): each loader reads a benchmark's released files, whose assumed schema
is stated in its module docstring and column-name constants.

- `load(name, path, **kwargs)`: all samples as a tuple (what the env needs: len() and indexing);
  images stay encoded bytes or file paths and are decoded on use.
- `iter_samples(name, path, **kwargs)`: the same samples streamed (parquet one record batch at a
  time), for multi-GB files or a first look at a file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mmsearch_gym.data.loaders import fvqa, infoseek, infoseek_sub2k, livevqa, mmsearch, simplevqa
from mmsearch_gym.data.loaders.errors import LoaderError
from mmsearch_gym.data.sample import VQASample
from mmsearch_gym.data.suites import register_loader

_MODULES = {module.NAME: module for module in (fvqa, infoseek, infoseek_sub2k, mmsearch, simplevqa,
                                                          livevqa)}

LOADERS: dict[str, Callable[..., tuple[VQASample, ...]]] = {name: m.load for name, m in _MODULES.items()}
ITERATORS: dict[str, Callable[..., Iterator[VQASample]]] = {name: m.iter_samples for name, m in _MODULES.items()}


def known_loaders() -> tuple[str, ...]:
    return tuple(sorted(LOADERS))


def _lookup(table: dict[str, Callable[..., Any]], name: str) -> Callable[..., Any]:
    if name not in table:
        raise ValueError(f"unknown dataset loader {name!r}; known loaders: {', '.join(known_loaders())}")
    return table[name]


def load(name: str, path: str | Path, **kwargs: Any) -> tuple[VQASample, ...]:
    """All samples of benchmark `name` in `path` (a file, or a folder of the benchmark's files).

    kwargs go to the loader: `limit=` for all; `image_dir=` for infoseek, simplevqa and livevqa;
    `question_extractor=` for fvqa and infoseek-sub2k; `skip_missing_images=` for infoseek.
    """
    return _lookup(LOADERS, name)(path, **kwargs)


def iter_samples(name: str, path: str | Path, **kwargs: Any) -> Iterator[VQASample]:
    """Samples of benchmark `name` streamed one at a time (no duplicate-id check, no limit)."""
    return _lookup(ITERATORS, name)(path, **kwargs)


def register_all() -> None:
    """Register every loader with `data.suites` (idempotent; done at import)."""
    for name, loader in LOADERS.items():
        register_loader(name, loader)


register_all()

__all__ = ["ITERATORS", "LOADERS", "LoaderError", "iter_samples", "known_loaders", "load", "register_all"]
