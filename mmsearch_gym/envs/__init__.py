"""The `ImageSearchVQA-v0` environment, its rule sets (action grammar), prompts, reward and spaces."""

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
from mmsearch_gym.envs.rules import LENIENT, MMSEARCH_R1, RULE_SETS, RuleSet, resolve_rules
from mmsearch_gym.envs.spaces import ChatMessages, ObservationSpace, RGBImage, UnicodeText

__all__ = [
    "Action", "ChatMessages", "ImageSearchVQAEnv", "LENIENT", "MMSEARCH_R1", "ObservationSpace", "PromptSet",
    "RGBImage", "RULE_SETS", "RewardConfig", "RuleSet", "UnicodeText", "compute_reward", "exact_match",
    "format_score", "normalize_answer", "parse_action", "resolve_rules", "score_answer", "substring_match",
    "turn_is_well_formed",
]
