"""Turning the env's `dataset=` argument into a sequence of `VQASample`s.

Accepted: a sequence of samples; a registered suite name; a suite directory; `(loader_name, path)` or
the string `loader:path` for a benchmark file.
Suites and loaders register themselves here so the environment needs no knowledge of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, Union

from mmsearch_gym.data.sample import VQASample

SuiteFactory = Callable[[], Sequence[VQASample]]
Loader = Callable[[Union[str, Path]], Sequence[VQASample]]


@dataclass(frozen=True)
class SuiteEntry:
    """A named suite: how to load its samples, and the recorded search cache bundle shipped with it
    (what `search="replay"` replays when no `cache_path` is given)."""

    load: SuiteFactory
    cache_bundle: Path | None = None


SUITES: dict[str, SuiteEntry] = {}
LOADERS: dict[str, Loader] = {}
DEFAULT_SUITE = "synth-mini"


def register_suite(name: str, factory: SuiteFactory, cache_bundle: Path | None = None) -> None:
    SUITES[name] = SuiteEntry(factory, cache_bundle)


def suite_cache_bundle(dataset: Any) -> Path | None:
    """The bundled cache of the suite named by `dataset` (None means the default suite), if any."""
    name = DEFAULT_SUITE if dataset is None else dataset
    entry = SUITES.get(name) if isinstance(name, str) else None
    return entry.cache_bundle if entry else None


def register_loader(name: str, loader: Loader) -> None:
    LOADERS[name] = loader


def _checked(samples: Sequence[Any], origin: str) -> tuple[VQASample, ...]:
    samples = tuple(samples)
    if not samples:
        raise ValueError(f"dataset {origin} is empty")
    seen: set[str] = set()
    for position, sample in enumerate(samples):
        if not isinstance(sample, VQASample):
            raise ValueError(f"dataset {origin}: item {position} is a {type(sample).__name__}, not a VQASample")
        if sample.image is None:
            raise ValueError(f"dataset {origin}: sample {sample.id!r} has no image")
        if sample.id in seen:
            raise ValueError(f"dataset {origin}: duplicate sample id {sample.id!r}")
        seen.add(sample.id)
    return samples


def _from_string(spec: str) -> tuple[VQASample, ...]:
    """A suite directory, or `loader:path` (e.g. `fvqa:data/fvqa_test.parquet`)."""
    if Path(spec).is_dir():
        from mmsearch_gym.data.suite_io import read_suite

        return _checked(read_suite(spec), repr(spec))
    name, separator, path = spec.partition(":")
    if separator and name in LOADERS:
        return _checked(LOADERS[name](path), repr(spec))
    known = ", ".join(sorted(SUITES)) or "none registered"
    raise ValueError(
        f"unknown dataset {spec!r}: not a suite name (known: {known}), a suite directory, or "
        f"LOADER:PATH with a loader among {', '.join(sorted(LOADERS)) or 'none registered'}")


def resolve_dataset(dataset: Any) -> tuple[VQASample, ...]:
    """The samples named by the env's `dataset=` argument, or a ValueError naming what was wrong."""
    if dataset is None:
        dataset = DEFAULT_SUITE
        if dataset not in SUITES:
            raise ValueError(
                f"the bundled suite {DEFAULT_SUITE!r} is not available in this installation; pass "
                "dataset= a sequence of VQASample objects, a suite name, or (loader, path), e.g. "
                "gym.make('ImageSearchVQA-v0', dataset=[VQASample(...)], search=StaticSearchBackend(...))"
            )
    if isinstance(dataset, Path) or (isinstance(dataset, str) and dataset not in SUITES):
        return _from_string(str(dataset))
    if isinstance(dataset, str):
        return _checked(SUITES[dataset].load(), repr(dataset))
    if isinstance(dataset, tuple) and len(dataset) == 2 and isinstance(dataset[0], str) \
            and isinstance(dataset[1], (str, Path)):
        name, path = dataset
        if name not in LOADERS:
            known = ", ".join(sorted(LOADERS)) or "none registered"
            raise ValueError(f"unknown dataset loader {name!r}; known loaders: {known}")
        return _checked(LOADERS[name](path), f"{name}:{path}")
    if isinstance(dataset, Sequence) and not isinstance(dataset, (str, bytes)):
        return _checked(dataset, "given as a sequence")
    raise ValueError(
        f"dataset must be a suite name, (loader, path) or a sequence of VQASample, got {type(dataset).__name__}"
    )
