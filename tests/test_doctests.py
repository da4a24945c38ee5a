"""The examples in the docstrings of the env, the rule sets, the reward and the argument checks run
as tests, so the documentation cannot drift from the code (only these modules: no global
--doctest-modules, which would import optional heavy dependencies)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "mmsearch_gym.checks",
    "mmsearch_gym.envs.grammar",
    "mmsearch_gym.envs.lenient",
    "mmsearch_gym.envs.rules",
    "mmsearch_gym.envs.reward",
    "mmsearch_gym.envs.image_search_vqa",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no docstring example"
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed (see the output above)"
