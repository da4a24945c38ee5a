"""Samples, bundled suites and benchmark loaders."""

from mmsearch_gym.data.sample import VQASample
from mmsearch_gym.data.suites import register_loader, register_suite, resolve_dataset

__all__ = ["VQASample", "register_loader", "register_suite", "resolve_dataset"]
