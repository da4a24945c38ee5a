"""`ImageSearchVQAEnv`: MMSearch-R1's multi-turn search-augmented VQA task as a Gymnasium env.

One episode = one visual question. Each `step` takes the model's whole assistant turn. A turn that
ends in an allowed search (within its limit, before the last turn) calls the search backend and the
results come back as the next user turn; every other turn ends the episode and is scored as the
final turn (DESIGN §2–4). `step` never raises because of what the model wrote or of a failing backend;
the only search errors it lets through are a strict-replay `CacheMiss` and a `CorruptCacheEntry`,
because those mean the evaluation cannot be reproduced, which must stop a run rather than be shown
to the model as a tool error.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence, SupportsFloat, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mmsearch_gym.checks import require_int
from mmsearch_gym.data.sample import VQASample
from mmsearch_gym.data.suites import resolve_dataset, suite_cache_bundle
from mmsearch_gym.envs import vector  # noqa: F401 - lets AsyncVectorEnv share ObservationSpace batches
from mmsearch_gym.envs.grammar import Action
from mmsearch_gym.envs.prompts import PROMPT_STYLES, PromptSet, resolve_prompts
from mmsearch_gym.envs.reward import RewardConfig, compute_reward, score_answer
from mmsearch_gym.envs.rules import DEFAULT_RULES, RuleSet, resolve_rules
from mmsearch_gym.envs.search_config import resolve_search
from mmsearch_gym.envs.spaces import ChatMessages, ObservationSpace, RGBImage, UnicodeText
from mmsearch_gym.envs.types import ChatMessage, ContentPart, SearchCall, SearchOutcome, StepInfo, TextPart
from mmsearch_gym.search.errors import CacheMiss, CorruptCacheEntry
from mmsearch_gym.search.render import Segment, render_results
from mmsearch_gym.search.types import (
    EncodedImage,
    QueryImage,
    ResultSource,
    SearchBackend,
    SearchKind,
    SearchResults,
)

DEFAULT_MAX_ACTION_CHARS = 16_000


@dataclass
class _Episode:
    """Mutable state of the episode in progress."""

    sample: VQASample
    images: list[np.ndarray]
    messages: list[ChatMessage]
    query_image: QueryImage
    turns: list[str] = field(default_factory=list)
    image_searches: int = 0
    text_searches: int = 0
    tool_errors: int = 0
    source_counts: dict[ResultSource, int] = field(default_factory=dict)
    search_log: list[SearchCall] = field(default_factory=list)
    results: list[tuple[str | None, SearchResults]] = field(default_factory=list)
    done: bool = False


def _text(text: str) -> TextPart:
    return {"type": "text", "text": text}


# The result sources that `info` counts, typed so that a misspelt source fails type checking.
_COUNTED_SOURCES: dict[str, ResultSource] = {"cache_hits": "cache_hit", "cache_misses": "cache_miss_empty"}


class ImageSearchVQAEnv(gym.Env[dict, str]):
    """Search-augmented visual question answering (MMSearch-R1's task).

    Args:
        dataset: a suite name, `(loader, path)`, or a sequence of `VQASample`s (None: the bundled suite).
        search: a `SearchBackend`, or a mode string ("replay", "replay_or_empty", "record", "live")
            used with `cache_path` (None: strict replay of the bundled suite's cache).
        cache_path: a search cache directory or bundle file for the mode strings.
        max_turns: assistant turns per episode; the last turn is always scored as final.
        image_search_limit, text_search_limit: searches of each kind allowed per episode.
        reward: a `RewardConfig` (or a dict of its fields).
        rules: "mmsearch_r1" (default: MMSearch-R1's released code exactly), "lenient"
            (whitespace-tolerant triggers) or a `RuleSet`; see `mmsearch_gym.envs.rules`.
        prompt_style: "mmsearch_r1" (teaches the search grammar) or "direct_answer" (no tools).
        prompts: a `PromptSet` or a JSON file of templates, replacing our default wording.
        max_action_chars: longer turns are cut to this many characters before parsing (like a
            generation length limit); `info["action_truncated"]` says so.
        top_k: results per search call.
        render_mode: None or "ansi" (the transcript as text).

    Observation: `{"images": (question image, thumbnails…), "messages": (chat messages…)}`; image parts
    of messages point into `images` by index. Action: the assistant turn as a string. `info`
    (`mmsearch_gym.envs.types.StepInfo`) also carries the question and every search's results as
    structured data, for agents that must not parse the prompt wording.
    `close()` closes the search cache the env opened itself (from a mode string), never a backend
    object it was given.

    >>> import gymnasium as gym, mmsearch_gym
    >>> env = gym.make("ImageSearchVQA-v0")          # the bundled suite, strict offline replay
    >>> obs, info = env.reset(seed=0, options={"index": 0})
    >>> [message["role"] for message in obs["messages"]], info["turn"], info["rules"]
    (['user'], 0, 'mmsearch_r1')
    >>> obs, reward, terminated, truncated, info = env.step("<reason>Searching.</reason><search><img></search>")
    >>> reward, terminated, info["image_searches"], [m["role"] for m in obs["messages"]]
    (0.0, False, 1, ['user', 'assistant', 'user'])
    >>> obs, reward, terminated, truncated, info = env.step("<reason>Unsure.</reason><answer>no idea</answer>")
    >>> terminated, info["score"], info["format_score"], round(reward, 2)
    (True, 0.0, 1, 0.1)
    >>> env.close()
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        dataset: Any = None,
        search: SearchBackend | str | None = None,
        cache_path: str | None = None,
        max_turns: int = 3,
        image_search_limit: int = 1,
        text_search_limit: int = 2,
        reward: RewardConfig | Mapping[str, Any] | None = None,
        rules: str | RuleSet = DEFAULT_RULES,
        prompt_style: str = "mmsearch_r1",
        prompts: PromptSet | str | None = None,
        max_action_chars: int = DEFAULT_MAX_ACTION_CHARS,
        top_k: int = 5,
        render_mode: str | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:  # one line naming the bad key, never the other arguments (a dataset can be huge)
            valid = [name for name, parameter in inspect.signature(type(self).__init__).parameters.items()
                     if name != "self" and parameter.kind is not parameter.VAR_KEYWORD]
            raise ValueError(f"unknown {type(self).__name__} argument(s) {sorted(unknown)}; valid arguments: {valid}")
        max_turns = require_int("max_turns", max_turns, low=1)
        image_search_limit = require_int("image_search_limit", image_search_limit, low=0)
        text_search_limit = require_int("text_search_limit", text_search_limit, low=0)
        top_k = require_int("top_k", top_k, low=1)
        max_action_chars = require_int("max_action_chars", max_action_chars, low=1)
        if prompt_style not in PROMPT_STYLES:
            raise ValueError(f"unknown prompt_style {prompt_style!r}; use one of {PROMPT_STYLES}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"unknown render_mode {render_mode!r}; use None or 'ansi'")
        if isinstance(reward, Mapping):
            reward = RewardConfig.from_mapping(reward)
        if reward is not None and not isinstance(reward, RewardConfig):
            raise ValueError(f"reward must be a RewardConfig or a dict of its fields, got {type(reward).__name__}")
        self.rules: RuleSet = resolve_rules(rules)

        self.dataset: tuple[VQASample, ...] = resolve_dataset(dataset)
        self.search: SearchBackend = resolve_search(search, cache_path, suite_cache_bundle(dataset))
        # a cache opened here from a mode string is ours to close; a backend object is the caller's
        self._owned_search: SearchBackend | None = self.search if search is None or isinstance(search, str) else None
        self.max_turns = max_turns
        self.image_search_limit = image_search_limit
        self.text_search_limit = text_search_limit
        self.reward_config = reward or RewardConfig()
        self.prompt_style = prompt_style
        self.prompts = resolve_prompts(prompts)
        self.max_action_chars = max_action_chars
        self.top_k = top_k
        self.render_mode = render_mode
        self.training_step: int | None = None
        """Set by a trainer so the search-penalty warm-up (RewardConfig) knows the step."""

        max_images = 1 + image_search_limit * top_k
        self.observation_space = ObservationSpace({
            "images": spaces.Sequence(RGBImage(), stack=False),
            "messages": ChatMessages(max_messages=1 + 2 * max_turns, max_images=max_images),
        })
        self.action_space = UnicodeText(max_length=10_000_000)
        self._episode: _Episode | None = None
        self._sample_index = {sample.id: position for position, sample in enumerate(self.dataset)}

    # ----------------------------------------------------------------------------------------- API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict, dict[str, Any]]:
        """Start an episode: `options={"index": i}` or `{"sample_id": s}` picks the sample, otherwise
        the seeded RNG does."""
        super().reset(seed=seed)
        sample = self.dataset[self._pick(options or {})]
        question_image = sample.rgb()
        prompt = self.prompts.first_turn(sample.question, self.prompt_style)
        self._episode = _Episode(
            sample=sample,
            query_image=QueryImage(question_image, url=sample.image_url),
            images=[question_image],
            messages=[{"role": "user", "content": [{"type": "image", "index": 0}, _text(prompt)]}],
        )
        return self._observation(), self._info(action=None, score=None, fmt=None)

    def step(self, action: str) -> tuple[dict, SupportsFloat, bool, bool, dict[str, Any]]:
        episode = self._episode
        if episode is None or episode.done:
            raise RuntimeError("step() called before reset() or after the episode ended; call reset()")
        if not isinstance(action, str):
            raise TypeError(f"action must be the assistant turn as a str, got {type(action).__name__}")
        truncated_action = len(action) > self.max_action_chars
        text = action[: self.max_action_chars]
        parsed = self.rules.parse_action(text)
        episode.turns.append(text)
        episode.messages.append({"role": "assistant", "content": [_text(text)]})

        if self._search_allowed(parsed):
            self._run_search(parsed)
            info = self._info(action=parsed, score=None, fmt=None, action_truncated=truncated_action)
            info["search"] = dict(episode.search_log[-1])
            return self._observation(), 0.0, False, False, info

        episode.done = True
        score = score_answer(parsed.answer, episode.sample.gold, self.reward_config.scorer)
        fmt = self.rules.format_score(episode.turns)
        searches = self.rules.search_count(episode.turns, episode.image_searches + episode.text_searches)
        reward = compute_reward(score, fmt, searches, self.reward_config, self.training_step)
        info = self._info(action=parsed, score=score, fmt=fmt, action_truncated=truncated_action)
        info["penalised_searches"] = searches
        return self._observation(), float(reward), True, False, info

    def close(self) -> None:
        """Close the search cache this env opened (idempotent); a backend passed in stays open."""
        owned, self._owned_search = self._owned_search, None
        closer = getattr(owned, "close", None)
        if callable(closer):
            closer()
        super().close()

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        if self._episode is None:
            return ""
        lines = []
        for message in self._episode.messages:
            body = "".join(part["text"] if part["type"] == "text" else f"<image {part['index']}>"
                           for part in message["content"])
            lines.append(f"[{message['role']}]\n{body}")
        return "\n\n".join(lines) + "\n"

    # ------------------------------------------------------------------------------------ internals

    def _pick(self, options: dict[str, Any]) -> int:
        if "index" in options:
            index = options["index"]
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)) \
                    or not 0 <= index < len(self.dataset):
                raise ValueError(f"options['index'] must be an int in [0, {len(self.dataset)}), got {index!r}")
            return int(index)
        if "sample_id" in options:
            sample_id = options["sample_id"]
            if sample_id not in self._sample_index:
                raise ValueError(f"options['sample_id'] {sample_id!r} is not in the dataset")
            return self._sample_index[sample_id]
        unknown = set(options) - {"index", "sample_id"}
        if unknown:
            raise ValueError(f"unknown reset option(s) {sorted(unknown)}; use 'index' or 'sample_id'")
        return int(self.np_random.integers(len(self.dataset)))

    def _current(self) -> _Episode:
        if self._episode is None:
            raise RuntimeError("no episode in progress; call reset()")
        return self._episode

    def _search_allowed(self, action: Action) -> bool:
        episode = self._current()
        if len(episode.turns) >= self.max_turns:
            return False
        if action.kind == "image_search":
            return episode.image_searches < self.image_search_limit
        if action.kind == "text_search":
            return episode.text_searches < self.text_search_limit
        return False

    def _call_backend(self, action: Action) -> SearchResults:
        episode = self._current()
        kind: SearchKind = "image" if action.kind == "image_search" else "text"
        try:
            if kind == "image":
                results = self.search.image_search(episode.query_image, self.top_k)
            else:
                results = self.search.text_search(action.query or "", self.top_k)
            if not isinstance(results, SearchResults) or results.kind != kind:
                raise TypeError(f"backend returned {type(results).__name__} instead of {kind} SearchResults")
            if len(results.items) > self.top_k:  # keep observations inside observation_space
                results = replace(results, items=results.items[: self.top_k])
        except (CacheMiss, CorruptCacheEntry):
            raise  # not the model's doing: a strict replay that cannot be honoured must stop the run
        except Exception as error:  # noqa: BLE001 - a backend must never crash an episode
            return SearchResults.failed(kind, f"{type(error).__name__}: {error}")
        return results

    def _run_search(self, action: Action) -> None:
        episode = self._current()
        results = self._call_backend(action)
        if action.kind == "image_search":
            episode.image_searches += 1
            follow_up = self.prompts.after_image_search
        else:
            episode.text_searches += 1
            follow_up = self.prompts.after_text_search
        episode.tool_errors += results.error is not None
        episode.source_counts[results.source] = episode.source_counts.get(results.source, 0) + 1
        episode.results.append((action.query, results))
        episode.search_log.append({
            "kind": results.kind,
            "query": action.query,
            "image_digest": episode.query_image.digest if results.kind == "image" else None,
            "items": len(results.items),
            "error": results.error,
            "source": results.source,
        })
        segments = render_results(results, self.prompts, query=action.query or "")
        episode.messages.append({"role": "user", "content": self._results_parts(segments, follow_up)})

    def _results_parts(self, segments: Sequence[Segment], follow_up: str) -> list[ContentPart]:
        """The results turn as message parts: `results_turn` with its `{results}` slot filled by the
        rendered segments, thumbnails becoming image parts appended to the episode's images."""
        episode = self._current()
        before, after = self.prompts.results_turn.split("{results}", 1)
        fill = {"question": episode.sample.question, "follow_up": follow_up}
        parts: list[ContentPart] = [_text(before.format(**fill))]
        for segment in [*segments, after.format(**fill)]:
            last = parts[-1]
            if isinstance(segment, EncodedImage):
                episode.images.append(segment.pixels)  # read-only; observations copy it
                parts.append({"type": "image", "index": len(episode.images) - 1})
            elif last["type"] == "text":
                parts[-1] = _text(last["text"] + segment)
            else:
                parts.append(_text(segment))
        return parts

    def _observation(self) -> dict:
        """A fresh copy of the dialog (callers keep observations; Gymnasium's checker demands new
        objects per call). Messages hold only strings and ints, so a two-level copy is a deep copy
        at a fraction of `copy.deepcopy`'s cost."""
        episode = self._current()
        return {
            "images": tuple(image.copy() for image in episode.images),
            "messages": tuple({"role": m["role"], "content": [dict(part) for part in m["content"]]}
                              for m in episode.messages),
        }

    def _info(self, action: Action | None, score: float | None, fmt: int | None,
              action_truncated: bool = False) -> dict[str, Any]:
        episode = self._current()
        info: StepInfo = {
            "sample_id": episode.sample.id,
            "category": episode.sample.category,
            "question": episode.sample.question,
            "rules": self.rules.name,
            "turn": len(episode.turns),
            "image_searches": episode.image_searches,
            "text_searches": episode.text_searches,
            "searches": episode.image_searches + episode.text_searches,
            "tool_errors": episode.tool_errors,
            "cache_hits": episode.source_counts.get(_COUNTED_SOURCES["cache_hits"], 0),
            "cache_misses": episode.source_counts.get(_COUNTED_SOURCES["cache_misses"], 0),
            "search_results": [_outcome(query, results) for query, results in episode.results],
        }
        if action is not None:
            info["action_kind"] = action.kind
            info["invalid_reason"] = action.reason
            info["action_truncated"] = action_truncated
        if action is not None and score is not None and fmt is not None:
            info["answer"] = action.answer
            info["score"] = score
            info["format_score"] = fmt
        return cast(dict[str, Any], info)


def _outcome(query: str | None, results: SearchResults) -> SearchOutcome:
    """One executed search as fresh plain data (callers may keep or alter infos)."""
    return {
        "kind": results.kind,
        "query": query,
        "items": [{"title": item.title, "url": item.url, "snippet": item.snippet} for item in results.items],
        "error": results.error,
    }
