"""`ImageSearchVQA-v0` as a verifiers (0.4) environment: the model is the policy, our env is the world.

Why: prime-rl and verifiers users train and evaluate through verifiers' own loop (`vf-eval`, env
servers). This adapter lets them play our env's episodes unchanged and score them with OUR reward:

- the taskset (`MMSearchTaskset`) is a suite of ours; one task per sample, carrying its `index` and
  `sample_id` (the env is reset with `options={"index": index}` and the id is checked);
- the env (`MMSearchEnv`) opens one `gym.make("ImageSearchVQA-v0", ...)` per episode, sends the first
  observation as the user turn (images as `data:` URL `image_url` parts, lossless PNG by default),
  takes the model's reply as the action, `env.step`s it, sends the results turn (the thumbnails as
  images) as the next user turn, and so on until the episode ends;
- the trace gets our reward (`rewards["mmsearch_reward"]`, weight 1, so `trace.reward` is our reward)
  and the metrics `score`, `format_score`, `searches`, `image_searches`, `text_searches`, `turns`;
  `trace.info["mmsearch"]` keeps the sample id and how the episode ended. An episode that verifiers
  stopped before our env ended it (a turn/token limit, a timeout, a failed model call) gets no
  reward: a guessed one would train the policy on a score the env never gave;
- the seat is `agent` (`--env.agent.*`, as in verifiers' single-agent env). Its harness is our
  in-process chat harness (`verifiers_chat.ChatHarness`: one model call per turn, nothing to install)
  and its runtime a local subprocess box: the model gets no tools, it acts only through the env.

Evaluating with verifiers' own entry point
-------------------------------------------
`vf-eval <taskset-id>` imports the id as a TOP-LEVEL module (`-` read as `_`; a dotted path such as
ours cannot be an id). `python -m mmsearch_gym.integrations.verifiers` is verifiers' `vf-eval` main,
unchanged, run after this module is registered as the top-level module `mmsearch_gym_verifiers`, so
the id `mmsearch-gym-verifiers` resolves to it. Against any OpenAI-compatible server (vLLM, SGLang,
`transformers serve`, a hosted API), e.g. one at http://127.0.0.1:8000/v1 serving `my-vlm`::

    OPENAI_API_KEY=EMPTY python -m mmsearch_gym.integrations.verifiers mmsearch-gym-verifiers \\
        -m my-vlm --client.base-url http://127.0.0.1:8000/v1 --client.api-key-var OPENAI_API_KEY \\
        -n 20 --no-push -o outputs

(`tests/test_verifiers_adapter.py` runs exactly this against a loopback server.) `--no-push` keeps
the run local (verifiers uploads to the Prime Intellect platform by default); `--no-rich` swaps the
live dashboard for logs and prints every trace as JSON. Every other `vf-eval` flag works (`-r 4`
rollouts per task, `-c` concurrency, `--sampling.temperature 0.7`, `--env.agent.max-turns`). Our
env's settings are `--env.taskset.*`: `dataset` (suite name, suite directory or `loader:path`;
default the bundled `synth-mini`), `search` (mode string; default strict replay of the suite's
cache), `cache-path`, `max-turns`, `image-search-limit`, `text-search-limit`, `rules`,
`prompt-style`, `top-k`, `max-action-chars`, `image-format`. Results: `outputs/<run>/traces.jsonl`,
one episode a line.

Python (a trainer's own loop) uses the classes directly: `register_plugin()`, then
`vf.load_environment(MMSearchEnvConfig.model_validate({"taskset": {"id": PLUGIN_ID}}))`. verifiers'
env servers (prime-rl) start their workers with `spawn`, and each imports the id itself: there the
id needs a real top-level module, so the package ships one, `mmsearch_gym_verifiers` (it re-exports
this module; verifiers finds plugins through `__all__`); with it installed, plain
`vf-eval mmsearch-gym-verifiers ...` works too.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Literal, SupportsFloat, cast

import gymnasium as gym

try:
    import verifiers.v1 as vf
except ImportError as _error:  # the optional extra is missing
    raise ImportError("the verifiers adapter needs verifiers 0.4: pip install 'mmsearch-gym[verifiers]' "
                      f"({_error})") from None
from pydantic import Field, field_validator

from mmsearch_gym.agents.messages import to_openai_messages
from mmsearch_gym.cache.modes import REPLAY_MODES
from mmsearch_gym.data.suites import resolve_dataset, suite_cache_bundle
from mmsearch_gym.envs.prompts import PROMPT_STYLES
from mmsearch_gym.envs.rules import RULE_SETS
from mmsearch_gym.integrations.verifiers_chat import ChatHarness
from mmsearch_gym.registration import ENV_ID, register_envs

__all__ = [
    "PLUGIN_ID",
    "PLUGIN_MODULE",
    "REWARD_NAME",
    "ChatHarness",
    "MMSearchEnv",
    "MMSearchEnvConfig",
    "MMSearchTask",
    "MMSearchTaskData",
    "MMSearchTaskset",
    "MMSearchTasksetConfig",
    "SettingsError",
    "main",
    "register_plugin",
]

PLUGIN_ID = "mmsearch-gym-verifiers"
"""The taskset id to give `vf-eval` (`--env.taskset.id`, or its first positional argument)."""
PLUGIN_MODULE = "mmsearch_gym_verifiers"
"""The top-level module name verifiers imports for `PLUGIN_ID`; `register_plugin` makes it this module."""
REWARD_NAME = "mmsearch_reward"
METRICS = ("score", "format_score", "searches", "image_searches", "text_searches")


class SettingsError(ValueError):
    """The env refused the taskset's settings (e.g. an unknown dataset); `main` shows it as one line."""


class MMSearchTasksetConfig(vf.TasksetConfig):
    """Our env's settings (`--env.taskset.*`): the `gym.make` kwargs that can be written on a command line."""

    dataset: str = "synth-mini"
    """A suite name (e.g. `synth-mini`), a suite directory, or `loader:path` (e.g. `fvqa:test.parquet`)."""
    search: str = "replay"
    """`replay` (a search missing from the cache is an error) or `replay_or_empty` (it returns no results).
    Recording or live search needs a backend object, which a command line cannot hold."""
    cache_path: str | None = None
    """Search cache directory or bundle; None uses the suite's bundled cache."""
    max_turns: int = Field(3, ge=1)
    image_search_limit: int = Field(1, ge=0)
    text_search_limit: int = Field(2, ge=0)
    rules: str = "mmsearch_r1"
    prompt_style: str = "mmsearch_r1"
    top_k: int = Field(5, ge=1)
    max_action_chars: int | None = Field(None, ge=1)
    """None keeps the env's default limit."""
    image_format: Literal["PNG", "JPEG", "WEBP"] = "PNG"
    """How images travel in `data:` URLs; PNG is lossless (the model sees exactly the env's pixels)."""

    @field_validator("search", "rules", "prompt_style")
    @classmethod
    def _known(cls, value: str, info: Any) -> str:
        """Refuse a misspelt name at config time (one line, before any episode runs); the env checks the rest."""
        known = {"search": REPLAY_MODES, "rules": tuple(RULE_SETS), "prompt_style": PROMPT_STYLES}[info.field_name]
        if value not in known:
            raise ValueError(f"unknown {info.field_name} {value!r}; use one of {list(known)}")
        return value

    def env_kwargs(self) -> dict[str, Any]:
        """The `gym.make("ImageSearchVQA-v0", ...)` keyword arguments these settings stand for."""
        kwargs: dict[str, Any] = {
            "dataset": self.dataset, "search": self.search, "cache_path": self.cache_path,
            "max_turns": self.max_turns, "image_search_limit": self.image_search_limit,
            "text_search_limit": self.text_search_limit, "rules": self.rules,
            "prompt_style": self.prompt_style, "top_k": self.top_k,
        }
        if self.max_action_chars is not None:
            kwargs["max_action_chars"] = self.max_action_chars
        return kwargs


def episode_kwargs(config: MMSearchTasksetConfig) -> dict[str, Any]:
    """`config.env_kwargs()` with the dataset loaded once, to be shared by every episode's `gym.make` (a
    suite named by string would be read again per episode); the cache its name implies is kept."""
    kwargs = config.env_kwargs()
    try:
        kwargs["dataset"] = resolve_dataset(config.dataset)
    except ValueError as error:  # the loader's own one-line message names the bad dataset
        raise SettingsError(f"--env.taskset.dataset: {error}") from None
    if config.cache_path is None:
        kwargs["cache_path"] = suite_cache_bundle(config.dataset)
    return kwargs


class MMSearchTaskData(vf.TaskData):
    """One sample of the suite. The prompt stays None: the env's first observation opens the exchange."""

    index: int
    """Position in the suite: the episode is `env.reset(options={"index": index})`."""
    sample_id: str
    category: str


class MMSearchTask(vf.Task[MMSearchTaskData, vf.State, vf.TaskConfig]):
    """Scored by the env's `run()` (our reward), so it declares no `@vf.reward` of its own."""


class MMSearchTaskset(vf.Taskset[MMSearchTask, MMSearchTasksetConfig]):
    """Every sample of `config.dataset`, in suite order (select with `-n`, `--select.*`)."""

    def load(self) -> Sequence[MMSearchTask]:
        # the env itself is built once here: every setting is checked before the first episode starts,
        # and the tasks come from the very samples the episodes will load
        register_envs()
        kwargs = episode_kwargs(self.config)
        try:
            env = gym.make(ENV_ID, **kwargs)
        except ValueError as error:  # the env's own one-line message names the bad setting
            raise SettingsError(f"--env.taskset: {error}") from None
        try:
            samples = env.unwrapped.dataset  # type: ignore[attr-defined]
        finally:
            env.close()
        return [MMSearchTask(MMSearchTaskData(id=sample.id, name=sample.id, index=index, sample_id=sample.id,
                                              category=sample.category),
                             self.config.task)
                for index, sample in enumerate(samples)]


class MMSearchEnvConfig(vf.EnvConfig):
    agent: vf.AgentConfig = vf.AgentConfig(runtime=vf.SubprocessConfig())
    """The policy's seat. A local box: the chat harness runs in-process and executes nothing in it."""


def _reply(segment: vf.Segment) -> str:
    """The model's turn as it produced it. `Segment.last_reply` strips whitespace, but the env's rules
    read the raw turn (MMSearch-R1's triggers allow one final newline, the format score sees the rest)."""
    for message in reversed(segment.messages):
        if isinstance(message, vf.AssistantMessage):
            return message.content or ""
    return ""


def _record(trace: vf.Trace, reward: float, info: Mapping[str, Any]) -> None:
    trace.record_reward(REWARD_NAME, reward)
    for name in METRICS:
        trace.record_metric(name, float(info[name]))
    trace.record_metric("turns", float(info["turn"]))


class MMSearchEnv(vf.Env[MMSearchEnvConfig]):
    """Plays one `ImageSearchVQA-v0` episode per task; the env's reward is the trace's reward."""

    @functools.cached_property
    def _episode_kwargs(self) -> dict[str, Any]:
        register_envs()
        return episode_kwargs(self.taskset.config)  # type: ignore[arg-type]

    async def run(self, task: vf.Task, agents: vf.Agents) -> None:
        config: MMSearchTasksetConfig = self.taskset.config  # type: ignore[assignment]
        data: MMSearchTaskData = task.data  # type: ignore[assignment]
        env = gym.make(ENV_ID, **self._episode_kwargs)
        try:
            await self._play(env, task, data, agents, config.image_format)
        finally:
            env.close()

    async def _play(self, env: gym.Env, task: vf.Task, data: MMSearchTaskData, agents: vf.Agents,
                    image_format: str) -> None:
        obs, info = env.reset(options={"index": data.index})
        if info["sample_id"] != data.sample_id:
            raise ValueError(f"task {data.idx}: the suite's sample {data.index} is {info['sample_id']!r}, "
                             f"the task was built for {data.sample_id!r}; the dataset changed under the taskset")
        ended, reward = False, cast(SupportsFloat, 0.0)
        async with agents.agent.interaction(task) as interaction:
            messages = to_openai_messages(obs, image_format)
            segment = await interaction.turn(messages)
            while not segment.terminated:
                # encoding and search replay are blocking work: keep the event loop free for other episodes
                obs, reward, terminated, truncated, info = await asyncio.to_thread(env.step, _reply(segment))
                if terminated or truncated:
                    ended = True
                    break
                sent = len(messages) + 1  # the assistant turn just played is already on the trace
                messages = await asyncio.to_thread(to_openai_messages, obs, image_format)
                segment = await interaction.turn(messages[sent:])
            # recorded before the exchange closes, so verifiers' own log and dashboard show our reward too
            trace = interaction.trace
            trace.info["mmsearch"] = {"sample_id": data.sample_id, "episode_ended": ended,
                                      "action_kind": info.get("action_kind"), "answer": info.get("answer")}
            if ended:
                _record(trace, float(reward), info)


def register_plugin() -> None:
    """Make `PLUGIN_ID` resolvable by verifiers' loaders in this process (idempotent): verifiers imports a
    taskset id as a top-level module, so this module is registered under `PLUGIN_MODULE`."""
    module = sys.modules[__name__]
    existing = sys.modules.setdefault(PLUGIN_MODULE, module)
    # a module re-exporting ours (an installed `mmsearch_gym_verifiers` shim) is just as good
    if getattr(existing, "MMSearchTaskset", None) is not MMSearchTaskset:
        raise RuntimeError(f"module name {PLUGIN_MODULE!r} is already taken by {existing!r}")


def main(argv: list[str] | None = None) -> None:
    """verifiers' `vf-eval` entry point, unchanged, with `PLUGIN_ID` resolvable (see the module docstring)."""
    from verifiers.v1.cli.eval.main import main as vf_eval

    register_plugin()
    try:
        vf_eval(argv)
    except SettingsError as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":  # run as `python -m`: register the importable module, not this `__main__` copy
    import importlib

    importlib.import_module("mmsearch_gym.integrations.verifiers").main()
