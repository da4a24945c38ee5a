"""The TRL internals `grpo.MultiTurnGRPOTrainer` relies on, checked at construction.

Why: the trainer overrides TRL's private `_generate` and relies on the tool-image branch of
`_generate_and_score_completions` (docs/trl-multiturn-vlm.md). Private code changes without notice, so
`verify_trl_internals` checks the version range and the exact shapes used (signatures, the returned
names, the lines that route tool images) and fails loudly instead of training on silently wrong inputs.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Callable

import trl
from packaging.version import Version
from trl import GRPOTrainer

__all__ = ["TRL_RANGE", "verify_trl_internals"]

TRL_RANGE = (Version("1.16"), Version("1.17"))
"""Supported TRL versions: >= the first, < the second."""


def _function_ast(function: Callable) -> ast.AST:
    return ast.parse(textwrap.dedent(inspect.getsource(function))).body[0]


def verify_trl_internals() -> None:
    """Fail loudly when the TRL internals `MultiTurnGRPOTrainer` relies on have changed shape."""
    version = Version(trl.__version__)
    problems = []
    if not TRL_RANGE[0] <= version < TRL_RANGE[1]:
        problems.append(f"trl {trl.__version__} is outside the supported range >={TRL_RANGE[0]},<{TRL_RANGE[1]}")
    if list(inspect.signature(GRPOTrainer._generate).parameters) != ["self", "prompts"]:
        problems.append(f"GRPOTrainer._generate{inspect.signature(GRPOTrainer._generate)} is not (self, prompts)")
    returns = [node for node in ast.walk(_function_ast(GRPOTrainer._generate)) if isinstance(node, ast.Return)]
    names = [tuple(getattr(e, "id", None) for e in r.value.elts) for r in returns if isinstance(r.value, ast.Tuple)]
    expected = ("prompt_ids", "completion_ids", "tool_mask", "completions", "logprobs", "extra_fields", "images",
                "tool_images")
    if names != [expected]:
        problems.append(f"GRPOTrainer._generate returns {names}, expected one return of {expected}")
    scoring = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    for needle in ("= self._generate(prompts)", "if self.tools and any(imgs for imgs in tool_images) and self._is_vlm:",
                   'forward_kwargs["mm_token_type_ids"] = mm_ids'):
        if needle not in scoring:
            problems.append(f"GRPOTrainer._generate_and_score_completions no longer contains {needle!r}")
    unpack = [node for node in ast.walk(_function_ast(GRPOTrainer._generate_and_score_completions))
              if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
              and getattr(node.value.func, "attr", None) == "_generate"]
    if len(unpack) != 1 or not isinstance(unpack[0].targets[0], ast.Tuple) or len(unpack[0].targets[0].elts) != 8:
        problems.append("GRPOTrainer._generate_and_score_completions does not unpack 8 values from self._generate")
    logps = inspect.signature(GRPOTrainer._get_per_token_logps_and_entropies).parameters
    for name in ("model", "input_ids", "attention_mask", "logits_to_keep", "pixel_values", "image_grid_thw",
                 "num_images", "mm_token_type_ids"):
        if name not in logps:
            problems.append(f"GRPOTrainer._get_per_token_logps_and_entropies lost its {name!r} parameter")
    if problems:
        raise RuntimeError("TRL internals used by mmsearch_gym.trainers.grpo changed: " + "; ".join(problems))
