"""The `ImageSearchVQA-v0` environment, its action grammar, prompts, reward and spaces."""

from mmsearch_gym.envs.grammar import Action, format_score, parse_action, turn_is_well_formed
from mmsearch_gym.envs.image_search_vqa import ImageSearchVQAEnv
from mmsearch_gym.envs.prompts import PromptSet
from mmsearch_gym.envs.reward import (
    RewardConfig,
    compute_reward,
    exact_match,
    normalize_answer,
    score_answer,
    substring_match,
)
from mmsearch_gym.envs.spaces import ChatMessages, RGBImage, UnicodeText

__all__ = [
    "Action", "ChatMessages", "ImageSearchVQAEnv", "PromptSet", "RGBImage", "RewardConfig", "UnicodeText",
    "compute_reward", "exact_match", "format_score", "normalize_answer", "parse_action", "score_answer",
    "substring_match", "turn_is_well_formed",
]
