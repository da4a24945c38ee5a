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
sampled last token. The generation config, stop criterion and suppression are `mmsearch_gym.hf`'s, the
same the transformers agent uses, so a turn ends at the same token in training and in evaluation
(a test holds them equal). `EpisodeRollout` and the batch builders live in `episodes`, the settings in
`sampling`; both are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import gymnasium as gym

from mmsearch_gym.checks import require_int
from mmsearch_gym.hf.generation import (
    SpecialIds,
    build_generation_config,
    suppress_tokens_processor,
    using_generation_config,
)
from mmsearch_gym.hf.processor import vision_token_ids
from mmsearch_gym.hf.stopping import StopChecker, StopReason, stop_criteria, stop_position, truncate_at_stop
from mmsearch_gym.trainers.dialog import DialogTokenizer, Rendered
from mmsearch_gym.trainers.episodes import (  # noqa: F401 - re-exported (public import path)
    EpisodeRollout,
    recompute_logprobs,
    rollout_output,
    training_batch,
)
from mmsearch_gym.trainers.sampling import (  # noqa: F401 - re-exported (public import path)
    LogitsProcessorFactory,
    SamplingSettings,
    TurnContext,
)


@dataclass
class _Live:
    index: int
    env: gym.Env
    episode: EpisodeRollout
    done: bool = False


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
        group_size = require_int("group_size", group_size, low=1)
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
        unwrapped: Any = env.unwrapped  # ImageSearchVQAEnv: its reward's warm-up reads the trainer step
        unwrapped.training_step = step
        obs, info = env.reset(options={"sample_id": sample_id})
        prompt = self.dialog.prompt(obs)
        episode = EpisodeRollout(
            sample_id=sample_id, group_index=group_index, prompt_ids=prompt.ids, completion_ids=[], env_mask=[],
            logprobs=[], images=list(prompt.images), num_prompt_images=len(prompt.images),
            pixel_values=list(prompt.pixel_values), image_grid_thw=list(prompt.image_grid_thw), info=dict(info),
            messages=[dict(m) for m in obs["messages"]])
        return _Live(index, env, episode)

    def _batch(self, states: Sequence[_Live], device: Any, pad: int) -> dict[str, Any]:
        import torch

        sequences = [state.episode.prompt_ids + state.episode.completion_ids for state in states]
        length = max(len(ids) for ids in sequences)
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

    def _turn(self, model: Any, states: Sequence[_Live]) -> None:
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        config, ids = build_generation_config(self.sampling, model.generation_config, self.tokenizer,
                                              output_logits=True, return_dict_in_generate=True)
        batch = self._batch(states, next(model.parameters()).device, ids.pad)
        length = batch["input_ids"].shape[1]
        # the suppression comes first and works out of place, so output.logits stay the raw logits
        processors = suppress_tokens_processor(self.suppressed_token_ids)
        if self.logits_processor_factory is not None:
            contexts = [TurnContext(row, state.index, state.episode.sample_id, state.episode.group_index,
                                    len(state.episode.actions), length) for row, state in enumerate(states)]
            processors.extend(self.logits_processor_factory(contexts))
        criteria = stop_criteria(self.tokenizer, self.checker, length)
        with torch.no_grad(), using_generation_config(model, config):
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
            count, reason = self._stop_position(generated[row], ids)
            self._record(state, generated[row][:count], step_logprobs[row][:count], reason)

    def _stop_position(self, generated: list[int], ids: SpecialIds) -> tuple[int, StopReason]:
        """Where the row stopped (`hf.stopping.stop_position`); everything after it must be padding."""
        count, reason = stop_position(generated, ids.eos, self.tokenizer, self.checker)
        if any(token != ids.pad for token in generated[count:]):
            raise RuntimeError(f"a row kept generating after its stop point ({reason} at {count}); the stop check "
                               "and generate disagree (tokenizer decode not deterministic?)")
        return count, reason

    def _record(self, state: _Live, ids: list[int], logprobs: list[float], reason: StopReason) -> None:
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
