"""The environment as TRL tools, for `GRPOTrainer(environment_factory=...)`.

Why a second route: users of TRL's native tool calling (the model's own `<tool_call>` format,
rendered by a tool-capable chat template) can train on the same environment, searches, images and
reward, without our `rollout_func` machinery. TRL calls `reset(**row)` before each rollout, exposes
every public method below as a tool (name, type hints and docstring become the tool schema), and
reads `get_reward()` once the rollout ends.

Mapping to the env: each tool call becomes one well-formed env turn (`image_search` ->
`<reason>…</reason><search><img></search>`, `text_search(query)` -> `<text_search>query</text_search>`,
`answer(answer)` -> `<answer>answer</answer>`). The query is first put on one line without tags
(`envs.grammar.one_line_query`): under the official rules a newline in it would keep the turn from
searching, and an empty query would end the episode, so an empty one is refused without spending a
turn. Limits, scoring, the format score (over the sequence of tool calls) and the search penalty are
the env's own. Search results come back as content blocks, thumbnails as images (without the env's
follow-up instructions, which teach the tag grammar).
A rollout that never calls `answer` scores 0, like an episode without an answer. The search-penalty
warm-up needs the trainer step: pass `training_step_callback(factory)` to the trainer's callbacks.

MMSearch-R1's tag grammar (the `rollout_func` route, `grpo.py`) and this route are alternatives:
the chat template and prompt differ (see `TOOL_PROMPT`), the environment is the same.
"""

from __future__ import annotations

import io
from typing import Any, Callable, Sequence

import gymnasium as gym

from mmsearch_gym.data.sample import VQASample
from mmsearch_gym.envs.grammar import IMAGE_SEARCH_ACTION, one_line_query, text_search_turn
from mmsearch_gym.hf.messages import to_pil

TOOL_PROMPT = ("Answer the question about the image. When the image alone is not enough, call image_search to "
               "find out what it shows, and text_search for a fact about it. Finish by calling answer with a short "
               "answer.\n\nQuestion: {question}")
_REASON_TEXT = "Tool call."
_REASON = f"<reason>{_REASON_TEXT}</reason>"
ENDED = "The episode is over; no more tool calls are accepted."
EMPTY_QUERY = "text_search needs a non-empty query; nothing was searched and no turn was used."


class ImageSearchToolEnv:
    """One environment instance whose searches and answer are TRL tools (built by the factory)."""

    def __init__(self, env: gym.Env, factory: "EnvironmentFactory | None" = None) -> None:
        self._env = env
        self._factory = factory
        self._reward = 0.0
        self._done = True
        self._info: dict[str, Any] = {}

    def reset(self, **row: Any) -> None:
        """Start the episode of the dataset row's `sample_id` (the prompt comes from the dataset)."""
        sample_id = row.get("sample_id")
        if not isinstance(sample_id, str):
            raise ValueError(f"dataset rows need a 'sample_id' column naming an env sample (tool_dataset(samples)); "
                             f"got keys {sorted(row)}")
        self._env.unwrapped.training_step = self._factory.training_step if self._factory else None
        _, self._info = self._env.reset(options={"sample_id": sample_id})
        self._reward, self._done = 0.0, False

    def image_search(self) -> list:
        """Search the web with the question's image, to find out what or who it shows.

        Returns:
            The matching web pages, each with its picture and title.
        """
        return self._step(f"{_REASON}{IMAGE_SEARCH_ACTION}")

    def text_search(self, query: str) -> list:
        """Search the web with words, for a fact about something already identified.

        Args:
            query: A specific, self-contained query; it cannot see the image.

        Returns:
            Summaries of the web pages that best match the query.
        """
        if self._done:
            return [{"type": "text", "text": ENDED}]
        line = one_line_query(query) if isinstance(query, str) else ""
        if not line:  # the official rules would end the episode on an empty query: refuse, spend no turn
            return [{"type": "text", "text": EMPTY_QUERY}]
        return self._step(text_search_turn(_REASON_TEXT, line))

    def answer(self, answer: str) -> str:
        """Give the final answer to the question; the episode ends.

        Args:
            answer: A short answer: a name, a number, a date or a few words.

        Returns:
            A confirmation that the answer was recorded.
        """
        blocks = self._step(f"{_REASON}<answer>{answer}</answer>")
        return blocks[0]["text"] if blocks and blocks[0].get("type") == "text" else "Answer recorded."

    def get_reward(self) -> float:
        """The env reward of the finished episode (0 when it never ended with an answer)."""
        return self._reward

    # ------------------------------------------------------------------------------------ internals

    def _step(self, action: str) -> list[dict[str, Any]]:
        if self._done:
            return [{"type": "text", "text": ENDED}]
        obs, reward, terminated, truncated, self._info = self._env.step(action)
        if terminated or truncated:
            self._done, self._reward = True, float(reward)
            kind = self._info.get("action_kind")
            if kind in ("image_search", "text_search"):
                text = ("That search is not allowed now (limit reached or last turn); the episode ended without an "
                        "answer.")
            elif kind == "answer":
                text = "Answer recorded. The episode is over."
            else:  # the env found the turn invalid: saying "Answer recorded" would mislead the model
                text = f"That call made an invalid turn ({self._info.get('invalid_reason')}); the episode is over."
            return [{"type": "text", "text": text}]
        blocks: list[dict[str, Any]] = []
        for part in obs["messages"][-1]["content"]:
            if part["type"] == "text":
                blocks.append({"type": "text", "text": part["text"]})
            else:
                blocks.append({"type": "image", "image": to_pil(obs["images"][part["index"]])})
        prompts = self._env.unwrapped.prompts  # drop the tag-grammar instructions that follow the results
        for follow_up in (prompts.after_image_search, prompts.after_text_search):
            if blocks and blocks[-1]["type"] == "text" and blocks[-1]["text"].endswith(follow_up):
                text = blocks[-1]["text"][: -len(follow_up)].rstrip("\n")
                blocks[-1] = {"type": "text", "text": text}
        return blocks


class EnvironmentFactory:
    """`environment_factory` for TRL: each call builds a fresh `ImageSearchToolEnv`.

    Args:
        make_env: builds one gym env (e.g. `environment.make_env_factory(config)[0]`).
    """

    def __init__(self, make_env: Callable[[], gym.Env]) -> None:
        self.make_env = make_env
        self.training_step: int | None = None
        """Handed to each env at reset for the search-penalty warm-up (None: full penalty)."""

    def __call__(self) -> ImageSearchToolEnv:
        return ImageSearchToolEnv(self.make_env(), self)


def training_step_callback(factory: EnvironmentFactory) -> Any:
    """A TrainerCallback keeping `factory.training_step` equal to the trainer's global step, so each
    env's search-penalty warm-up (RewardConfig.penalty_warmup_steps) follows training."""
    from transformers import TrainerCallback

    class FollowTrainingStep(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            factory.training_step = int(state.global_step)

    return FollowTrainingStep()


def tool_dataset(samples: Sequence[VQASample]):  # -> datasets.Dataset
    """Rows for the tool route: `prompt` (TOOL_PROMPT), `image` (the question image) and `sample_id`."""
    from datasets import Dataset
    from PIL import Image

    if not samples:
        raise ValueError("the training dataset is empty")
    images = []
    for sample in samples:
        buffer = io.BytesIO()
        to_pil(sample.rgb()).save(buffer, format="PNG")
        images.append(Image.open(io.BytesIO(buffer.getvalue())))
    return Dataset.from_dict({
        "prompt": [[{"role": "user", "content": TOOL_PROMPT.format(question=sample.question)}] for sample in samples],
        "image": images,
        "sample_id": [sample.id for sample in samples],
    })


def tool_chat_template() -> str:
    """TRL's bundled Qwen3-VL chat template: Qwen's vision tokens plus `<tool_call>` tool calling (the
    stock Qwen2.5-VL template cannot render tool turns, so TRL rejects it for tools)."""
    from importlib.resources import files

    return files("trl").joinpath("chat_templates", "qwen3_vl.jinja").read_text(encoding="utf-8")
