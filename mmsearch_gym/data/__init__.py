"""Samples, bundled suites and benchmark loaders."""

from mmsearch_gym.data.sample import VQASample
from mmsearch_gym.data.suites import register_loader, register_suite, resolve_dataset
from mmsearch_gym.data import loaders  # noqa: E402,F401 - registers the benchmark loaders
from mmsearch_gym.data.bundled import register_bundled_suites

register_bundled_suites()

__all__ = ["VQASample", "register_loader", "register_suite", "resolve_dataset"]
