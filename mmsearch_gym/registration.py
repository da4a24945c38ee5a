"""Registers the environment ids with Gymnasium (idempotent, safe to import many times)."""

from __future__ import annotations

import gymnasium as gym

ENV_ID = "ImageSearchVQA-v0"
ENTRY_POINT = "mmsearch_gym.envs.image_search_vqa:ImageSearchVQAEnv"


def register_envs() -> None:
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point=ENTRY_POINT, nondeterministic=False)
