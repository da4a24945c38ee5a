"""Multi-turn rollouts of a VLM policy in the environment, with exact token bookkeeping.

`RolloutCollector.collect(model, sample_ids, group_size)` plays `group_size` episodes per sample
in lock-step (one left-padded `generate` call per turn for every live episode) and returns, per
episode, what a policy-gradient trainer needs:

- `prompt_ids`: the first observation rendered by the chat template (with its image placeholders);
- `completion_ids`: everything after it, turn by turn — the ids the policy sampled, the end-of-turn
  token, and each search-results user turn rendered alone (`dialog.DialogTokenizer.user_suffix`);
  never decoded and re-tokenised, so the ids trained are the ids sampled;
- `env_mask`: 1 exactly on the ids the policy sampled, 0 on template/user/tool ids and image
  placeholders (TRL's `env_mask`);
- `logprobs`: log-softmax of the model's logits divided by the temperature, at each sampled id
  (0.0 where the mask is 0). Computed from the raw logits (before top-p/top-k and the suppression of
  vision tokens), because that is exactly what the training forward computes; a conformance test
  holds them equal to < 1e-5;
- `images`: every image whose placeholders the ids hold, in order (question image, then thumbnails);
- the env reward, final info and the actions (the text the env received for each turn).

Generation details that each fix a silent failure (docs/trl-multiturn-vlm.md):
`mm_token_type_ids` is passed on every turn (else Qwen2.5-VL gives image tokens 1-D positions and
log-probs drift by ~1e-3); vision special tokens are suppressed (a sampled `<|video_pad|>` crashes the
next turn); every turn stops at the first closing action tag (`</answer>`, `</search>`,
`</text_search>`), and the env receives the text cut just after it, while the ids keep the whole
sampled last token.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import gymnasium as gym

from mmsearch_gym.agents.hf import vision_token_ids
from mmsearch_gym.agents.stopping import ACTION_STOP_STRINGS, StopChecker, truncate_at_stop
from mmsearch_gym.trainers.dialog import DialogTokenizer, Rendered

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image


@dataclass(frozen=True)
class SamplingSettings:
    """How each turn is sampled. temperature 0 means greedy (log-probs then at temperature 1)."""

    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    stop: tuple[str, ...] = ACTION_STOP_STRINGS
    suppress_vision_tokens: bool = True
    max_batch_size: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be an int >= 1, got {self.max_new_tokens!r}")
        if not isinstance(self.temperature, (int, float)) or self.temperature < 0:
            raise ValueError(f"temperature must be a number >= 0, got {self.temperature!r}")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"top_k must be an int >= 0 (0: off), got {self.top_k!r}")
        if self.max_batch_size is not None and (not isinstance(self.max_batch_size, int) or self.max_batch_size < 1):
            raise ValueError(f"max_batch_size must be None or an int >= 1, got {self.max_batch_size!r}")

    @property
    def logprob_temperature(self) -> float:
        return float(self.temperature) if self.temperature > 0 else 1.0


@dataclass(frozen=True)
class TurnContext:
    """What a logits-processor factory learns about each row of a generate call."""

    row: int
    episode: int
    sample_id: str
    group_index: int
    turn: int
    input_length: int
    """Length of the left-padded input (generated ids start at this position)."""


LogitsProcessorFactory = Callable[[Sequence[TurnContext]], Sequence[Any]]
"""Returns extra `transformers.LogitsProcessor`s for one generate call (e.g. constrained decoding)."""


@dataclass
class EpisodeRollout:
    """One finished episode, token-exact."""

    sample_id: str
    group_index: int
    prompt_ids: list[int]
    completion_ids: list[int]
    env_mask: list[int]
    logprobs: list[float]
    images: list[Image.Image]
    num_prompt_images: int
    pixel_values: list[torch.Tensor]
    image_grid_thw: list[torch.Tensor]
    reward: float = 0.0
    actions: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    turn_spans: list[tuple[int, int]] = field(default_factory=list)
    """(start, end) of each turn's sampled ids within completion_ids."""
    hit_length_limit: bool = False
    """Some turn ended at max_new_tokens rather than at an action tag or eos."""

    @property
    def policy_tokens(self) -> int:
        return sum(self.env_mask)


@dataclass
class _Live:
    index: int
    env: gym.Env
    episode: EpisodeRollout
    done: bool = False


# ------------------------------------------------------------------------------------ HF plumbing

@functools.lru_cache(maxsize=1)
def _processor_classes() -> tuple[type, type]:
    import torch
    from transformers import LogitsProcessor, StoppingCriteria

    class StopAtActionTag(StoppingCriteria):
        """Ends a row once its generated ids decode to text holding a stop string (only the last
        `tail_tokens` generated ids are decoded, so the check is O(1) per step)."""

        def __init__(self, tokenizer: Any, checker: StopChecker, input_length: int) -> None:
            self.tokenizer, self.checker, self.input_length = tokenizer, checker, input_length

        def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
            start = max(self.input_length, input_ids.shape[1] - self.checker.tail_tokens)
            tails = self.tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=True)
            return torch.tensor([self.checker.hit(tail) for tail in tails], dtype=torch.bool, device=input_ids.device)

    class SuppressTokens(LogitsProcessor):
        """-inf on `token_ids` (cheaper than `suppress_tokens`, which builds a vocabulary mask per step)."""

        def __init__(self, token_ids: Sequence[int]) -> None:
            self.token_ids = torch.tensor(list(token_ids), dtype=torch.long)

        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
            ids = self.token_ids.to(scores.device)
            return scores.index_fill(-1, ids[ids < scores.shape[-1]], float("-inf"))

    return StopAtActionTag, SuppressTokens


@contextlib.contextmanager
def _using_generation_config(model: Any, config: Any) -> Iterator[None]:
    """Use `config` as the model's generation config for one call: `generate` fills unset fields from
    `model.generation_config`, so a checkpoint's defaults (e.g. Qwen's repetition_penalty) would leak in."""
    original = model.generation_config
    model.generation_config = config
    try:
        yield
    finally:
        model.generation_config = original


# --------------------------------------------------------------------------------------- collector

class RolloutCollector:
    """Plays episodes of an env with a VLM policy and records them token by token.

    Args:
        processor: the policy's HF processor (tokenizer, image processor, chat template).
        make_env: builds one environment (e.g. `environment.make_env_factory(...)[0]`).
        sampling: `SamplingSettings`.
        logits_processor_factory: optional extra logits processors per generate call (they change what
            is sampled, never the recorded log-probs, which come from the raw logits).
        chat_template_kwargs: extra `apply_chat_template` arguments.
    """

    def __init__(self, processor: Any, make_env: Callable[[], gym.Env], sampling: SamplingSettings = SamplingSettings(),
                 logits_processor_factory: LogitsProcessorFactory | None = None,
                 chat_template_kwargs: Mapping[str, Any] | None = None) -> None:
        if not callable(make_env):
            raise TypeError(f"make_env must be a callable returning an env, got {type(make_env).__name__}")
        self.dialog = DialogTokenizer(processor, chat_template_kwargs)
        self.tokenizer = self.dialog.tokenizer
        self.make_env = make_env
        self.sampling = sampling
        self.logits_processor_factory = logits_processor_factory
        self.checker = StopChecker(sampling.stop)
        self._envs: list[gym.Env] = []
        self.suppressed_token_ids: list[int] = []

    # -------------------------------------------------------------------------------------- public

    def collect(self, model: Any, sample_ids: Sequence[str], group_size: int = 1, *,
                training_step: int | None = None) -> list[EpisodeRollout]:
        """Play `group_size` episodes per sample id (episodes of a sample are consecutive in the result).

        `training_step` is handed to each env (`env.unwrapped.training_step`) for the reward's search
        penalty warm-up; None means evaluation (full penalty).
        """
        if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
            raise ValueError(f"group_size must be an int >= 1, got {group_size!r}")
        if isinstance(sample_ids, str):
            raise TypeError("sample_ids must be a sequence of sample ids, not one string")
        requests = [(sample_id, g) for sample_id in sample_ids for g in range(group_size)]
        return self.collect_requests(model, requests, training_step=training_step)

    def collect_requests(self, model: Any, requests: Sequence[tuple[str, int]], *,
                         training_step: int | None = None) -> list[EpisodeRollout]:
        """Play one episode per (sample id, index within its group) request, results in request order."""
        if not requests:
            return []
        self._prepare(model)
        while len(self._envs) < len(requests):
            self._envs.append(self.make_env())
        live = [self._start(index, self._envs[index], sample_id, g, training_step)
                for index, (sample_id, g) in enumerate(requests)]
        running = [state for state in live if not state.done]
        while running:
            size = self.sampling.max_batch_size or len(running)
            for start in range(0, len(running), size):
                self._turn(model, running[start:start + size])
            running = [state for state in running if not state.done]
        return [state.episode for state in live]

    def close(self) -> None:
        for env in self._envs:
            env.close()
        self._envs = []

    # ----------------------------------------------------------------------------------- internals

    def _prepare(self, model: Any) -> None:
        if self.sampling.suppress_vision_tokens and not self.suppressed_token_ids:
            self.suppressed_token_ids = vision_token_ids(self.dialog.processor, getattr(model, "config", None))

    def _start(self, index: int, env: gym.Env, sample_id: str, group_index: int, step: int | None) -> _Live:
        env.unwrapped.training_step = step
        obs, info = env.reset(options={"sample_id": sample_id})
        prompt = self.dialog.prompt(obs)
        episode = EpisodeRollout(
            sample_id=sample_id, group_index=group_index, prompt_ids=prompt.ids, completion_ids=[], env_mask=[],
            logprobs=[], images=list(prompt.images), num_prompt_images=len(prompt.images),
            pixel_values=list(prompt.pixel_values), image_grid_thw=list(prompt.image_grid_thw), info=dict(info),
            messages=[dict(m) for m in obs["messages"]])
        return _Live(index, env, episode)

    def _generation_config(self, model: Any) -> tuple[Any, set[int], int]:
        from transformers import GenerationConfig

        sampling = self.sampling
        original = model.generation_config
        eos = original.eos_token_id if original.eos_token_id is not None else self.tokenizer.eos_token_id
        eos = list(eos) if isinstance(eos, (list, tuple)) else [eos]
        if self.tokenizer.eos_token_id not in eos:
            eos.append(self.tokenizer.eos_token_id)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos[0]
        do_sample = sampling.temperature > 0
        return GenerationConfig(
            max_new_tokens=sampling.max_new_tokens, do_sample=do_sample,
            temperature=float(sampling.temperature) if do_sample else None,
            top_p=float(sampling.top_p) if do_sample else None,
            top_k=int(sampling.top_k) if do_sample else None,
            repetition_penalty=float(sampling.repetition_penalty), eos_token_id=eos, pad_token_id=pad,
            bos_token_id=original.bos_token_id, output_logits=True, return_dict_in_generate=True,
        ), set(eos), pad

    def _batch(self, states: Sequence[_Live], device: Any) -> dict[str, Any]:
        import torch

        sequences = [state.episode.prompt_ids + state.episode.completion_ids for state in states]
        length = max(len(ids) for ids in sequences)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(states), length), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(states), length), dtype=torch.long)
        for row, ids in enumerate(sequences):
            input_ids[row, length - len(ids):] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, length - len(ids):] = 1
        placeholders = (input_ids == self.dialog.image_token_id) & (attention_mask == 1)
        batch: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask,
                                 "mm_token_type_ids": placeholders.to(torch.int)}
        pixel_values = [pv for state in states for pv in state.episode.pixel_values]
        if pixel_values:
            for state, ids in zip(states, sequences):
                self.dialog.check_image_tokens(ids, state.episode.image_grid_thw)
            batch["pixel_values"] = torch.cat(pixel_values, dim=0)
            batch["image_grid_thw"] = torch.cat([grid for state in states for grid in state.episode.image_grid_thw])
        return {key: value.to(device) for key, value in batch.items()}

    def _cut(self, generated: list[int], eos: set[int]) -> tuple[int, str]:
        """(how many generated ids the row really sampled, why it ended: "eos", "stop" or "length"):
        the row stopped at its first eos id or at the step where the stop criterion fired."""
        tail = self.checker.tail_tokens
        for position, token in enumerate(generated):
            if token in eos:
                return position + 1, "eos"
            if self.checker.stop:
                window = generated[max(0, position + 1 - tail): position + 1]
                if self.checker.hit(self.tokenizer.decode(window, skip_special_tokens=True)):
                    return position + 1, "stop"
        return len(generated), "length"

    def _turn(self, model: Any, states: Sequence[_Live]) -> None:
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        stop_class, suppress_class = _processor_classes()
        device = next(model.parameters()).device
        batch = self._batch(states, device)
        length = batch["input_ids"].shape[1]
        config, eos, pad = self._generation_config(model)
        processors: list[Any] = [suppress_class(self.suppressed_token_ids)] if self.suppressed_token_ids else []
        if self.logits_processor_factory is not None:
            contexts = [TurnContext(row, state.index, state.episode.sample_id, state.episode.group_index,
                                    len(state.episode.actions), length) for row, state in enumerate(states)]
            processors.extend(self.logits_processor_factory(contexts))
        criteria = [stop_class(self.tokenizer, self.checker, length)] if self.checker.stop else []
        with torch.no_grad(), _using_generation_config(model, config):
            output = model.generate(**batch, generation_config=config, logits_processor=LogitsProcessorList(processors),
                                    stopping_criteria=StoppingCriteriaList(criteria))
        generated = output.sequences[:, length:].tolist()
        temperature = self.sampling.logprob_temperature
        # log-softmax of the raw logits at each step, gathered at the sampled ids: (rows, steps)
        sampled = output.sequences[:, length:]
        step_logprobs = torch.stack([
            torch.log_softmax(logits.float() / temperature, dim=-1).gather(1, sampled[:, step:step + 1]).squeeze(1)
            for step, logits in enumerate(output.logits)], dim=1).tolist() if output.logits else [[]] * len(states)
        for row, state in enumerate(states):
            count, reason = self._cut(generated[row], eos)
            if any(token != pad for token in generated[row][count:]):
                raise RuntimeError(f"row {row} kept generating after its stop point; the stop check and "
                                   "generate disagree (tokenizer decode not deterministic?)")
            self._record(state, generated[row][:count], step_logprobs[row][:count], reason)

    def _record(self, state: _Live, ids: list[int], logprobs: list[float], reason: str) -> None:
        episode = state.episode
        ended_with_eos = reason == "eos"
        episode.hit_length_limit |= reason == "length"
        text = truncate_at_stop(self.tokenizer.decode(ids, skip_special_tokens=True), self.checker.stop)
        start = len(episode.completion_ids)
        episode.completion_ids += ids
        episode.env_mask += [1] * len(ids)
        episode.logprobs += [float(value) for value in logprobs]
        episode.turn_spans.append((start, start + len(ids)))
        if not ended_with_eos:  # the template closes the turn; the policy did not sample it
            self._append(episode, Rendered(list(self.dialog.end_of_turn_ids)))
        episode.actions.append(text)
        obs, reward, terminated, truncated, info = state.env.step(text)
        episode.info = dict(info)
        episode.messages = [dict(m) for m in obs["messages"]]
        if terminated or truncated:
            episode.reward = float(reward)
            state.done = True
            return
        self._append(episode, self.dialog.user_suffix(obs))

    @staticmethod
    def _append(episode: EpisodeRollout, piece: Rendered) -> None:
        episode.completion_ids += piece.ids
        episode.env_mask += [0] * len(piece.ids)
        episode.logprobs += [0.0] * len(piece.ids)
        episode.images += piece.images
        episode.pixel_values += piece.pixel_values
        episode.image_grid_thw += piece.image_grid_thw


# ----------------------------------------------------------------------------------- TRL outputs

def rollout_output(episodes: Sequence[EpisodeRollout]) -> dict[str, list[Any]]:
    """The dict a TRL `rollout_func` returns: required `prompt_ids`, `completion_ids`, `logprobs`;
    `env_mask` (loss mask); `images` (every image of the episode, in placeholder order, routed by
    `grpo.MultiTurnGRPOTrainer`); and per-episode env results that TRL forwards to reward functions."""
    return {
        "prompt_ids": [list(e.prompt_ids) for e in episodes],
        "completion_ids": [list(e.completion_ids) for e in episodes],
        "logprobs": [list(e.logprobs) for e in episodes],
        "env_mask": [list(e.env_mask) for e in episodes],
        "images": [list(e.images) for e in episodes],
        "env_reward": [float(e.reward) for e in episodes],
        "env_score": [float(e.info.get("score", 0.0)) for e in episodes],
        "env_format": [float(e.info.get("format_score", 0)) for e in episodes],
        "env_searches": [int(e.info.get("searches", 0)) for e in episodes],
        "env_turns": [len(e.actions) for e in episodes],
        "sample_id": [e.sample_id for e in episodes],
        "actions": [list(e.actions) for e in episodes],
    }


def training_batch(episodes: Sequence[EpisodeRollout], pad_token_id: int, image_token_id: int) -> dict[str, Any]:
    """The batch TRL's training forward builds from these episodes: prompts left-padded, completions
    right-padded, images in episode order, `mm_token_type_ids` marking image placeholders."""
    import torch

    prompt_length = max(len(e.prompt_ids) for e in episodes)
    completion_length = max(len(e.completion_ids) for e in episodes)
    rows = len(episodes)
    input_ids = torch.full((rows, prompt_length + completion_length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, episode in enumerate(episodes):
        start = prompt_length - len(episode.prompt_ids)
        end = prompt_length + len(episode.completion_ids)
        input_ids[row, start:end] = torch.tensor(episode.prompt_ids + episode.completion_ids, dtype=torch.long)
        attention_mask[row, start:end] = 1
    batch: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask,
                             "mm_token_type_ids": ((input_ids == image_token_id) & (attention_mask == 1)).to(torch.int)}
    if any(e.pixel_values for e in episodes):
        batch["pixel_values"] = torch.cat([pv for e in episodes for pv in e.pixel_values])
        batch["image_grid_thw"] = torch.cat([grid for e in episodes for grid in e.image_grid_thw])
    return {"batch": batch, "prompt_length": prompt_length, "completion_length": completion_length}


def recompute_logprobs(model: Any, episodes: Sequence[EpisodeRollout], *, pad_token_id: int, image_token_id: int,
                       temperature: float = 1.0) -> list[list[float]]:
    """Each episode's completion log-probs from one training-style forward (no cache), for checking
    that sampling-time log-probs are what training computes."""
    import torch

    built = training_batch(episodes, pad_token_id, image_token_id)
    batch = {key: value.to(next(model.parameters()).device) for key, value in built["batch"].items()}
    prompt_length, completion_length = built["prompt_length"], built["completion_length"]
    with torch.no_grad():
        logits = model(**batch, use_cache=False).logits.float()
    logits = logits[:, prompt_length - 1: prompt_length + completion_length - 1] / temperature
    targets = batch["input_ids"][:, prompt_length:]
    values = torch.log_softmax(logits, dim=-1).gather(2, targets.unsqueeze(-1)).squeeze(-1)
    return [values[row, :len(e.completion_ids)].tolist() for row, e in enumerate(episodes)]
