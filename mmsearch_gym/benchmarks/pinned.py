"""What a leaderboard pins: one suite, one strictly replayed cache bundle, their hashes, env settings.

Why pinned by hash: a submission's numbers are only comparable with the others if every package was
played against the same samples and the same search results. `PinnedSuite.from_files` hashes the
files it is given and refuses explicit pins that differ, so a leaderboard never validates against
files other than the ones it announced.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from mmsearch_gym.benchmarks.runner import RunSpec, dataset_hash
from mmsearch_gym.data.sample import VQASample

__all__ = ["PinnedSuite"]


@dataclass(frozen=True)
class PinnedSuite:
    """What a leaderboard validates against: the samples and strict-replay search backend (`spec`), the
    suite hash and cache bundle hash every submission must carry, and env settings.

    `env_kwargs` are merged over `spec.env_kwargs`; the resulting env settings and reward config are
    what submissions' manifests must declare. `spec.search` should replay the pinned cache strictly
    (a miss is an error, never a live call), so re-playing is offline and exact.
    """

    spec: RunSpec
    suite_hash: str
    cache_bundle_hash: str | None
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.spec, RunSpec):
            raise ValueError(f"PinnedSuite.spec must be a RunSpec, got {type(self.spec).__name__}")
        if not isinstance(self.suite_hash, str) or not self.suite_hash:
            raise ValueError(f"PinnedSuite.suite_hash must be a non-empty string, got {self.suite_hash!r}")
        if self.cache_bundle_hash is not None and (not isinstance(self.cache_bundle_hash, str)
                                                   or not self.cache_bundle_hash):
            raise ValueError("PinnedSuite.cache_bundle_hash must be None or a non-empty string, got "
                             f"{self.cache_bundle_hash!r}")
        if not isinstance(self.env_kwargs, Mapping):
            raise ValueError(f"PinnedSuite.env_kwargs must be a mapping, got {type(self.env_kwargs).__name__}")

    @classmethod
    def from_spec(cls, spec: RunSpec, *, suite_hash: str | None = None, cache_bundle_hash: str | None = None,
                  env_kwargs: Mapping[str, Any] | None = None) -> PinnedSuite:
        """Pins what `evaluate(agent, spec, …)` writes into its manifest (the spec's hashes; without a
        suite hash, the dataset hash of its samples) unless other pins are given."""
        return cls(spec=spec, suite_hash=suite_hash or spec.suite_hash or dataset_hash(spec.samples),
                   cache_bundle_hash=cache_bundle_hash if cache_bundle_hash is not None else spec.cache_bundle_hash,
                   env_kwargs=dict(env_kwargs or {}))

    @classmethod
    def from_files(cls, suite: str | os.PathLike[str], cache_bundle: str | os.PathLike[str], *,
                   suite_hash: str | None = None, cache_bundle_hash: str | None = None,
                   env_kwargs: Mapping[str, Any] | None = None, seed: int = 0) -> PinnedSuite:
        """A suite (registered name or suite directory) with a strict replay of a cache bundle file.

        The pins default to the hashes of the given files; explicit pins must equal them, so a
        leaderboard never validates against files other than the ones it announced. The bundle's
        extracted copy (in the user cache directory) is checked against the bundle's hash, so an edited
        copy is refused instead of silently changing what every submission is re-played against."""
        from mmsearch_gym.cache.backend import CachedSearchBackend
        from mmsearch_gym.cache.bundle import verify_bundle

        samples = _load_samples(suite)
        bundle = Path(cache_bundle)
        if not bundle.is_file():
            raise ValueError(f"cache bundle {str(bundle)!r} is not a file; pin a bundle exported with "
                             "`mmsearch-gym cache export`")
        bundle_hash = verify_bundle(bundle).sha256
        if cache_bundle_hash is not None and cache_bundle_hash != bundle_hash:
            raise ValueError(f"cache bundle {str(bundle)!r} hashes to {bundle_hash}, but {cache_bundle_hash} is pinned")
        computed = dataset_hash(samples)
        if suite_hash is not None and suite_hash != computed:
            raise ValueError(f"suite {str(suite)!r} hashes to {computed}, but {suite_hash} is pinned")
        name = Path(suite).name if Path(suite).is_dir() else str(suite)
        search = CachedSearchBackend.replay(bundle, mode="replay", verify=True)
        spec = RunSpec(samples=samples, search=search, seed=seed, suite_name=name, suite_hash=computed,
                       cache_bundle_hash=bundle_hash)
        return cls(spec=spec, suite_hash=computed, cache_bundle_hash=bundle_hash, env_kwargs=dict(env_kwargs or {}))

    @property
    def samples(self) -> Sequence[VQASample]:
        return self.spec.samples

    def run_spec(self) -> RunSpec:
        """The spec submissions are re-played with: pinned hashes and merged env settings."""
        return dataclasses.replace(self.spec, suite_hash=self.suite_hash, cache_bundle_hash=self.cache_bundle_hash,
                                   env_kwargs={**self.spec.env_kwargs, **self.env_kwargs})


def _load_samples(suite: str | os.PathLike[str]) -> tuple[VQASample, ...]:
    from mmsearch_gym.data.suites import resolve_dataset

    return resolve_dataset(Path(suite) if Path(suite).is_dir() else suite)
