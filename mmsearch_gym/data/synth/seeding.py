"""Deterministic sub-seeds for the synthetic world.

Every random choice in `synth` draws from a generator seeded by `derive_seed(seed, *labels)`: the
labels name the purpose ("emblem", entity index, attempt), so each choice is independent of how many
other choices were made before it, and nothing depends on `hash()` of a string (salted per process)
or on set order. sha256 makes the mapping identical on every platform and Python version.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np

from mmsearch_gym.checks import require_int


def derive_seed(seed: int, *labels: object) -> int:
    """A 64-bit seed for the purpose named by `labels` under the world seed `seed`."""
    seed = require_int("seed", seed)
    text = "\x1f".join([str(seed), *(str(label) for label in labels)])
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def py_rng(seed: int, *labels: object) -> random.Random:
    """A `random.Random` for structural choices (its algorithm is fixed across Python versions)."""
    return random.Random(derive_seed(seed, *labels))


def np_rng(seed: int, *labels: object) -> np.random.Generator:
    """A numpy PCG64 generator for pixel noise (stable across platforms for the calls used here)."""
    return np.random.Generator(np.random.PCG64(derive_seed(seed, *labels)))
