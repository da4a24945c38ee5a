"""Rule sets: which turns search, what the format score is, which answer is scored.

Why a named bundle: the trigger, the format check, the answer extraction and the search count must
change together, or a trajectory could search under one reading and be scored under another. The env
takes ``rules="mmsearch_r1"`` (the default: MMSearch-R1's released code exactly,
`mmsearch_gym.envs.grammar`) or ``rules="lenient"`` (whitespace-tolerant triggers,
`mmsearch_gym.envs.lenient`), or any `RuleSet` object.

Where the default deliberately differs from the official code (plain bugs there, kept out here):
- a gold answer that normalises to "" (e.g. "A", an article) matches nothing; officially it matches an
  empty answer under EM and every answer under SubEM (`mmsearch_gym.envs.reward`);
- the official ``compute_score(extra_info=None)`` crashes on a correct answer after a search (it reads
  ``extra_info.get``); our reward needs no per-sample extras;
- a trajectory of more than 3 turns (possible with ``max_turns > 3``) has format 0, where the
  official scorer raises.
The official rollout decodes turns with special tokens skipped; the env receives the text an agent
returns, so an agent should pass its decoded turn the same way.

>>> official, lenient = resolve_rules("mmsearch_r1"), resolve_rules("lenient")
>>> turn = "<reason>x</reason><search><img></search>  "
>>> official.parse_action(turn).kind, lenient.parse_action(turn).kind
('invalid', 'image_search')
>>> official.search_count(["<reason>a</reason><answer>b</answer><search><img></search>"], 0)
1
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Sequence, Union

from mmsearch_gym.envs import grammar, lenient
from mmsearch_gym.envs.grammar import Action

RuleSetName = Literal["mmsearch_r1", "lenient"]


@dataclass(frozen=True)
class RuleSet:
    """The pure functions one rule set is made of.

    parse_action: one raw assistant turn -> `Action` (which search it triggers, its query, the
        answer it would be scored with).
    format_score: the assistant turns of a finished episode -> 0 or 1.
    search_count: (assistant turns, searches the env executed) -> the searches the penalty counts.
    """

    name: str
    parse_action: Callable[[str], Action]
    format_score: Callable[[Sequence[str]], int]
    search_count: Callable[[Sequence[str], int], int]


MMSEARCH_R1 = RuleSet("mmsearch_r1", grammar.parse_action, grammar.format_score, grammar.search_count)
LENIENT = RuleSet("lenient", lenient.parse_action, lenient.format_score, lenient.search_count)
RULE_SETS: dict[str, RuleSet] = {rules.name: rules for rules in (MMSEARCH_R1, LENIENT)}
DEFAULT_RULES: RuleSetName = "mmsearch_r1"


def resolve_rules(rules: Union[str, RuleSet, None]) -> RuleSet:
    """A `RuleSet` from its name (None: the default) or as it is."""
    if rules is None:
        return RULE_SETS[DEFAULT_RULES]
    if isinstance(rules, RuleSet):
        return rules
    if isinstance(rules, str) and rules in RULE_SETS:
        return RULE_SETS[rules]
    raise ValueError(f"unknown rules {rules!r}; use one of {sorted(RULE_SETS)} or a RuleSet")
