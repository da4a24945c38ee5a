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

from dataclasses import dataclass, field
from typing import Any, Sequence, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mmsearch_gym.data.sample import VQASample
from mmsearch_gym.data.suites import resolve_dataset, suite_cache_bundle
from mmsearch_gym.envs.grammar import Action, format_score, parse_action
from mmsearch_gym.envs.prompts import PROMPT_STYLES, PromptSet, resolve_prompts
from mmsearch_gym.envs.reward import RewardConfig, compute_reward, score_answer
from mmsearch_gym.envs.search_config import resolve_search
from mmsearch_gym.envs.spaces import ChatMessages, RGBImage, UnicodeText
from mmsearch_gym.search.errors import CacheMiss, CorruptCacheEntry
from mmsearch_gym.search.render import Segment, render_results
from mmsearch_gym.search.types import EncodedImage, QueryImage, SearchBackend, SearchResults

DEFAULT_MAX_ACTION_CHARS = 16_000


@dataclass
class _Episode:
    """Mutable state of the episode in progress."""

    sample: VQASample
    images: list[np.ndarray]
    messages: list[dict]
    query_image: QueryImage
    turns: list[str] = field(default_factory=list)
    image_searches: int = 0
    text_searches: int = 0
    tool_errors: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    search_log: list[dict] = field(default_factory=list)
    done: bool = False


def _text(text: str) -> dict:
    return {"type": "text", "text": text}


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
        prompt_style: "mmsearch_r1" (teaches the search grammar) or "direct_answer" (no tools).
        prompts: a `PromptSet` or a JSON file of templates, replacing our default wording.
        max_action_chars: longer turns are cut to this many characters before parsing (like a
            generation length limit); `info["action_truncated"]` says so.
        top_k: results per search call.
        render_mode: None or "ansi" (the transcript as text).

    Observation: `{"images": (question image, thumbnails…), "messages": (chat messages…)}`; image parts
    of messages point into `images` by index. Action: the assistant turn as a string.
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
        reward: RewardConfig | dict | None = None,
        prompt_style: str = "mmsearch_r1",
        prompts: PromptSet | str | None = None,
        max_action_chars: int = DEFAULT_MAX_ACTION_CHARS,
        top_k: int = 5,
        render_mode: str | None = None,
    ) -> None:
        for name, value, low in (("max_turns", max_turns, 1), ("image_search_limit", image_search_limit, 0),
                                 ("text_search_limit", text_search_limit, 0), ("top_k", top_k, 1),
                                 ("max_action_chars", max_action_chars, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if prompt_style not in PROMPT_STYLES:
            raise ValueError(f"unknown prompt_style {prompt_style!r}; use one of {PROMPT_STYLES}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"unknown render_mode {render_mode!r}; use None or 'ansi'")
        if isinstance(reward, dict):
            reward = RewardConfig(**reward)
        if reward is not None and not isinstance(reward, RewardConfig):
            raise ValueError(f"reward must be a RewardConfig or a dict of its fields, got {reward!r}")

        self.dataset: tuple[VQASample, ...] = resolve_dataset(dataset)
        self.search: SearchBackend = resolve_search(search, cache_path, suite_cache_bundle(dataset))
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
        self.observation_space = spaces.Dict({
            "images": spaces.Sequence(RGBImage(), stack=False),
            "messages": ChatMessages(max_messages=1 + 2 * max_turns, max_images=max_images),
        })
        self.action_space = UnicodeText(max_length=10_000_000)
        self._episode: _Episode | None = None
        self._sample_index = {sample.id: position for position, sample in enumerate(self.dataset)}

    # ----------------------------------------------------------------------------------------- API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict, dict[str, Any]]:
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
        parsed = parse_action(text)
        episode.turns.append(text)
        episode.messages.append({"role": "assistant", "content": [_text(text)]})

        if self._search_allowed(parsed):
            self._run_search(parsed)
            info = self._info(action=parsed, score=None, fmt=None, action_truncated=truncated_action)
            info["search"] = dict(episode.search_log[-1])
            return self._observation(), 0.0, False, False, info

        episode.done = True
        score = score_answer(parsed.answer, episode.sample.gold, self.reward_config.scorer)
        fmt = format_score(episode.turns)
        searches = episode.image_searches + episode.text_searches
        reward = compute_reward(score, fmt, searches, self.reward_config, self.training_step)
        info = self._info(action=parsed, score=score, fmt=fmt, action_truncated=truncated_action)
        return self._observation(), float(reward), True, False, info

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

    def _search_allowed(self, action: Action) -> bool:
        episode = self._episode
        if len(episode.turns) >= self.max_turns:
            return False
        if action.kind == "image_search":
            return episode.image_searches < self.image_search_limit
        if action.kind == "text_search":
            return episode.text_searches < self.text_search_limit
        return False

    def _call_backend(self, action: Action) -> SearchResults:
        episode = self._episode
        kind = "image" if action.kind == "image_search" else "text"
        try:
            if kind == "image":
                results = self.search.image_search(episode.query_image, self.top_k)
            else:
                results = self.search.text_search(action.query, self.top_k)
            if not isinstance(results, SearchResults) or results.kind != kind:
                raise TypeError(f"backend returned {type(results).__name__} instead of {kind} SearchResults")
        except (CacheMiss, CorruptCacheEntry):
            raise  # not the model's doing: a strict replay that cannot be honoured must stop the run
        except Exception as error:  # noqa: BLE001 - a backend must never crash an episode
            return SearchResults.failed(kind, f"{type(error).__name__}: {error}")
        return results

    def _run_search(self, action: Action) -> None:
        episode = self._episode
        results = self._call_backend(action)
        if action.kind == "image_search":
            episode.image_searches += 1
            follow_up = self.prompts.after_image_search
        else:
            episode.text_searches += 1
            follow_up = self.prompts.after_text_search
        episode.tool_errors += results.error is not None
        episode.cache_hits += results.source == "cache_hit"
        episode.cache_misses += results.source == "cache_miss_empty"
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

    def _results_parts(self, segments: Sequence[Segment], follow_up: str) -> list[dict]:
        """The results turn as message parts: `results_turn` with its `{results}` slot filled by the
        rendered segments, thumbnails becoming image parts appended to the episode's images."""
        episode = self._episode
        before, after = self.prompts.results_turn.split("{results}", 1)
        fill = {"question": episode.sample.question, "follow_up": follow_up}
        parts: list[dict] = [_text(before.format(**fill))]
        for segment in segments:
            if isinstance(segment, EncodedImage):
                episode.images.append(segment.pixels)  # read-only; observations copy it
                parts.append({"type": "image", "index": len(episode.images) - 1})
            elif parts[-1]["type"] == "text":
                parts[-1] = _text(parts[-1]["text"] + segment)
            else:
                parts.append(_text(segment))
        tail = after.format(**fill)
        if parts[-1]["type"] == "text":
            parts[-1] = _text(parts[-1]["text"] + tail)
        else:
            parts.append(_text(tail))
        return parts

    def _observation(self) -> dict:
        """A fresh copy of the dialog (callers keep observations; Gymnasium's checker demands new
        objects per call). Messages hold only strings and ints, so a two-level copy is a deep copy
        at a fraction of `copy.deepcopy`'s cost."""
        episode = self._episode
        return {
            "images": tuple(image.copy() for image in episode.images),
            "messages": tuple({"role": m["role"], "content": [dict(part) for part in m["content"]]}
                              for m in episode.messages),
        }

    def _info(self, action: Action | None, score: float | None, fmt: int | None,
              action_truncated: bool = False) -> dict[str, Any]:
        episode = self._episode
        info: dict[str, Any] = {
            "sample_id": episode.sample.id,
            "category": episode.sample.category,
            "turn": len(episode.turns),
            "image_searches": episode.image_searches,
            "text_searches": episode.text_searches,
            "searches": episode.image_searches + episode.text_searches,
            "tool_errors": episode.tool_errors,
            "cache_hits": episode.cache_hits,
            "cache_misses": episode.cache_misses,
        }
        if action is not None:
            info["action_kind"] = action.kind
            info["invalid_reason"] = action.reason
            info["action_truncated"] = action_truncated
        if score is not None:
            info["answer"] = action.answer
            info["score"] = score
            info["format_score"] = fmt
        return info
