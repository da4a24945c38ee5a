"""The verifiers adapter (`mmsearch_gym.integrations.verifiers`) against a real loopback OpenAI-compatible
server: verifiers' own `vf-eval` (the command the module docstring documents, run as a subprocess) plays our
env's episodes, and each episode must carry OUR reward, the images must reach the server as the env's
pixels, and a wrong answer must get the env's low reward. Skipped when the `verifiers` extra is absent.

The server answers like `OracleAgent`: it recognises the sample by the question image (pixel for pixel, so
an image that did not arrive intact fails the test) and question it received, and plays the sample's
search plan; for one sample it answers wrongly on purpose.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("verifiers")
vf = pytest.importorskip("verifiers.v1")

import gymnasium as gym
from loopback import LoopbackServer, Reply

from mmsearch_gym.agents.baselines import OracleAgent
from mmsearch_gym.agents.messages import to_openai_messages
from mmsearch_gym.data.suites import resolve_dataset
from mmsearch_gym.integrations import verifiers as adapter
from mmsearch_gym.integrations.verifiers_chat import ChatHarnessConfig, chat_request

ROOT = Path(__file__).resolve().parents[1]
SUITE = "synth-mini"
EPISODES = 6  # samples 0-5: image+text search, search-free, image search only
WRONG_SAMPLE = "synth-test-000003"
WRONG_ANSWER = "<reason>I am sure.</reason><answer>definitely not the answer</answer>"
CHAT_PATH = "/v1/chat/completions"


def _completion(content: str) -> dict[str, Any]:
    return {"id": "cmpl-test", "object": "chat.completion", "created": 0, "model": "oracle",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def _pixels(data_url: str) -> np.ndarray:
    header, _, payload = data_url.partition(",")
    assert header == "data:image/png;base64", header
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(payload))).convert("RGB"))


def _images_in(messages: list[dict[str, Any]]) -> list[np.ndarray]:
    return [_pixels(part["image_url"]["url"]) for message in messages if isinstance(message["content"], list)
            for part in message["content"] if part["type"] == "image_url"]


class OracleServer:
    """A chat-completions handler that plays `OracleAgent` (wrong on purpose for `WRONG_SAMPLE`) and keeps,
    per sample, every request body and every reply it gave."""

    def __init__(self, samples: list[Any]) -> None:
        self.samples = samples
        self.oracle = OracleAgent(samples)
        self.requests: dict[str, list[dict[str, Any]]] = {}
        self.replies: dict[str, list[str]] = {}
        self.failures: list[str] = []
        """What went wrong inside the handler (it runs in the server's thread, so an assert there would only
        show up as a dropped connection); every test asserts it stays empty."""
        self._lock = threading.Lock()

    def sample_of(self, messages: list[dict[str, Any]]) -> Any:
        """The sample whose question image (pixel for pixel) and question text open the conversation (some
        samples share an image: same entity, another question)."""
        first = messages[0]["content"]
        question_image = _images_in(messages[:1])[0]
        text = "".join(part["text"] for part in first if part["type"] == "text")
        same_image = [s for s in self.samples if np.array_equal(s.rgb(), question_image)]
        assert same_image, "the question image did not reach the server with the env's pixels"
        matches = [s for s in same_image if s.question in text]
        assert len(matches) == 1, f"{len(matches)} samples have this image and question"
        return matches[0]

    def __call__(self, request: Any) -> Reply:
        try:
            return self._answer(request.json())
        except AssertionError as error:
            with self._lock:
                self.failures.append(str(error))
            return Reply(500, {"error": {"message": str(error)}})

    def _answer(self, body: dict[str, Any]) -> Reply:
        sample = self.sample_of(body["messages"])
        turn = sum(1 for message in body["messages"] if message["role"] == "assistant")
        self.oracle.reset({"sample_id": sample.id})
        reply = self.oracle.act({"messages": body["messages"], "images": ()})
        if sample.id == WRONG_SAMPLE and "<answer>" in reply:
            reply = WRONG_ANSWER
        with self._lock:
            self.requests.setdefault(sample.id, []).append(body)
            self.replies.setdefault(sample.id, []).append(reply)
            assert len(self.replies[sample.id]) == turn + 1, "a turn was asked twice or skipped"
        return Reply(200, _completion(reply))


def _local_episode(sample_index: int, actions: list[str]) -> tuple[list[dict], float, dict]:
    """The local env played with the same actions: the observation before each action, the reward, the info."""
    env = gym.make("ImageSearchVQA-v0", dataset=SUITE)
    try:
        obs, info = env.reset(options={"index": sample_index})
        seen: list[dict] = []
        reward, done = 0.0, False
        for action in actions:
            assert not done, "the adapter sent more turns than the local episode has"
            seen.append(obs)
            obs, step_reward, terminated, truncated, info = env.step(action)
            reward, done = float(step_reward), terminated or truncated
        assert done, "the adapter stopped before the local episode ended"
        return seen, reward, info
    finally:
        env.close()


@pytest.fixture(scope="module")
def vf_eval_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[OracleServer, dict[str, dict]]:
    """`vf-eval` as the module docstring documents it, against the oracle server; the traces by sample id."""
    samples = list(resolve_dataset(SUITE)[:EPISODES])
    out = tmp_path_factory.mktemp("vf-eval")
    handler = OracleServer(samples)
    with LoopbackServer() as server:
        server.route(CHAT_PATH, handler)
        command = [sys.executable, "-m", "mmsearch_gym.integrations.verifiers", adapter.PLUGIN_ID,
                   "-m", "oracle", "--client.base-url", f"{server.base_url}/v1",
                   "--client.api-key-var", "OPENAI_API_KEY", "-n", str(EPISODES), "--no-push",
                   "-o", str(out)]
        environ = {**os.environ, "OPENAI_API_KEY": "EMPTY", "HOME": str(out / "home")}
        done = subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert handler.failures == []
    (traces_file,) = out.glob("*/traces.jsonl")
    traces = {}
    for line in traces_file.read_text().splitlines():
        episode = json.loads(line)
        (trace,) = episode["traces"]
        traces[trace["task"]["data"]["sample_id"]] = trace
    assert sorted(traces) == sorted(sample.id for sample in samples)
    return handler, traces


def test_vf_eval_scores_episodes_with_our_reward(vf_eval_run: tuple[OracleServer, dict[str, dict]]) -> None:
    handler, traces = vf_eval_run
    for index, sample in enumerate(handler.samples):
        trace = traces[sample.id]
        actions = handler.replies[sample.id]
        _, reward, info = _local_episode(index, actions)
        assert trace["ok"], trace["errors"]
        assert trace["rewards"] == {adapter.REWARD_NAME: {"score": reward, "weight": 1.0}}
        for name in adapter.METRICS:
            assert trace["metrics"][name] == float(info[name]), (sample.id, name)
        assert trace["metrics"]["turns"] == float(len(actions))
        assert trace["info"]["mmsearch"]["episode_ended"] is True
        # the trace's assistant turns are exactly the actions the env was stepped with
        assistant = [node["message"]["content"] for node in trace["nodes"] if node["message"]["role"] == "assistant"]
        assert assistant == actions
        if sample.id != WRONG_SAMPLE:
            assert info["score"] == 1.0 and len(actions) == len(OracleAgent.plan(sample)), sample.id


def test_wrong_answer_gets_the_envs_low_reward(vf_eval_run: tuple[OracleServer, dict[str, dict]]) -> None:
    handler, traces = vf_eval_run
    trace = traces[WRONG_SAMPLE]
    right = [traces[s.id]["rewards"][adapter.REWARD_NAME]["score"] for s in handler.samples if s.id != WRONG_SAMPLE]
    assert handler.replies[WRONG_SAMPLE][-1] == WRONG_ANSWER
    assert trace["metrics"]["score"] == 0.0 and trace["metrics"]["format_score"] == 1.0
    assert trace["rewards"][adapter.REWARD_NAME]["score"] < 0.5 <= min(right)
    assert trace["info"]["mmsearch"]["answer"] == "definitely not the answer"


def test_images_reach_the_server_as_the_observations_pixels(vf_eval_run: tuple[OracleServer, dict[str, dict]]) -> None:
    handler, _ = vf_eval_run
    thumbnails = 0
    for index, sample in enumerate(handler.samples):
        observations, _, _ = _local_episode(index, handler.replies[sample.id])
        requests = handler.requests[sample.id]
        assert len(requests) == len(observations)
        for body, obs in zip(requests, observations):
            # the whole conversation, as our own OpenAI-compatible conversion writes it (PNG data URLs) ...
            assert body["messages"] == to_openai_messages(obs)
            # ... and each image decodes to the observation's pixels, in the order the messages show them
            order = [part["index"] for message in obs["messages"] for part in message["content"]
                     if part["type"] == "image"]
            received = _images_in(body["messages"])
            assert len(received) == len(order)
            for pixels, position in zip(received, order):
                np.testing.assert_array_equal(pixels, obs["images"][position])
            thumbnails += len(order) - 1
    assert thumbnails > 0, "no episode sent a results turn with thumbnails"


# --------------------------------------------------------------------- episodes verifiers ends early


def _run_episodes(base_url: str, agent: dict[str, Any], count: int) -> list[Any]:
    """Episodes of the first `count` samples through verifiers' env machinery, in this process."""
    adapter.register_plugin()
    config = adapter.MMSearchEnvConfig.model_validate(
        {"taskset": {"id": adapter.PLUGIN_ID, "dataset": SUITE}, "agent": agent})
    env = vf.load_environment(config)
    assert isinstance(env, adapter.MMSearchEnv)
    ctx = vf.ModelContext(model="oracle", client=vf.EvalClientConfig(base_url=base_url, api_key_var="OPENAI_API_KEY"),
                          sampling=vf.SamplingConfig())

    async def play() -> list[Any]:
        async with env.serving():
            return [await env.run_episode(task, ctx) for task in env.taskset.take(count)]

    return asyncio.run(play())


def test_an_episode_verifiers_stops_early_gets_no_reward(monkeypatch: pytest.MonkeyPatch) -> None:
    """A turn cap below the env's: the exchange ends after the search turn, before our env scored anything,
    so the trace must carry no (guessed) reward."""
    monkeypatch.setenv("OPENAI_API_KEY", "EMPTY")
    samples = list(resolve_dataset(SUITE)[:1])
    handler = OracleServer(samples)
    with LoopbackServer() as server:
        server.route(CHAT_PATH, handler)
        (episode,) = _run_episodes(f"{server.base_url}/v1", {"max_turns": 1}, 1)
    (trace,) = episode.traces
    assert handler.failures == []
    search_turn = "<reason>I need to identify what the image shows.</reason><search><img></search>"
    assert handler.replies[samples[0].id] == [search_turn]
    assert trace.rewards == {} and trace.reward == 0.0
    assert trace.info["mmsearch"]["episode_ended"] is False


def test_a_failing_model_endpoint_fails_the_trace_without_reward(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "EMPTY")
    with LoopbackServer() as server:
        server.route(CHAT_PATH, Reply(500, {"error": {"message": "model crashed"}}))
        (episode,) = _run_episodes(f"{server.base_url}/v1", {}, 1)
    (trace,) = episode.traces
    assert not trace.ok and not episode.ok
    assert trace.rewards == {}
    assert "500" in json.dumps([error.model_dump() for error in trace.errors])


def test_plugin_registration_and_request_building() -> None:
    adapter.register_plugin()
    adapter.register_plugin()  # idempotent
    assert vf.environment_class(adapter.PLUGIN_ID) is adapter.MMSearchEnv
    assert vf.default_harness_id(adapter.PLUGIN_ID) == adapter.PLUGIN_ID
    with pytest.raises(ValueError, match="empty conversation"):
        chat_request("m", None, None)
    assert chat_request("m", "sys", "hi") == {"model": "m", "messages": [
        {"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}]}


def test_bad_settings_are_refused_with_one_line_naming_them(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"unknown rules 'bogus'; use one of \['mmsearch_r1', 'lenient'\]"):
        adapter.MMSearchTasksetConfig(rules="bogus")
    with pytest.raises(ValueError, match="unknown search 'live'"):  # needs a backend object, not a string
        adapter.MMSearchTasksetConfig(search="live")
    taskset = adapter.MMSearchTaskset(adapter.MMSearchTasksetConfig(dataset="/no/such/suite"))
    with pytest.raises(adapter.SettingsError, match="^--env.taskset.dataset: unknown dataset '/no/such/suite'") as raised:
        list(taskset)
    assert "\n" not in str(raised.value)
    monkeypatch.setitem(sys.modules, adapter.PLUGIN_MODULE, json)
    with pytest.raises(RuntimeError, match="already taken"):
        adapter.register_plugin()


def test_the_taskset_is_the_suite_in_order() -> None:
    samples = resolve_dataset(SUITE)
    tasks = list(adapter.MMSearchTaskset(adapter.MMSearchTasksetConfig(dataset=SUITE)).take(3))
    assert [(t.data.idx, t.data.index, t.data.sample_id, t.data.prompt) for t in tasks] == [
        (i, i, samples[i].id, None) for i in range(3)]


def test_a_top_level_shim_module_is_a_plugin_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The two-line module the docstring prescribes for spawned env servers resolves to our classes, and
    `register_plugin` accepts it in place of this module."""
    (tmp_path / f"{adapter.PLUGIN_MODULE}.py").write_text(
        "from mmsearch_gym.integrations.verifiers import *  # noqa: F403\n"
        "from mmsearch_gym.integrations.verifiers import __all__  # noqa: F401\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, adapter.PLUGIN_MODULE, raising=False)
    shim = importlib.import_module(adapter.PLUGIN_MODULE)
    assert shim is not adapter and shim.__file__ == str(tmp_path / f"{adapter.PLUGIN_MODULE}.py")
    assert vf.environment_class(adapter.PLUGIN_ID) is adapter.MMSearchEnv
    assert vf.load_taskset(adapter.MMSearchTasksetConfig(id=adapter.PLUGIN_ID)).__class__ is adapter.MMSearchTaskset
    assert vf.harness_config_type(adapter.PLUGIN_ID) is ChatHarnessConfig
    adapter.register_plugin()
    assert sys.modules[adapter.PLUGIN_MODULE] is shim


@pytest.mark.parametrize("module", ["verifiers", "verifiers_chat"])
def test_without_the_extra_the_import_error_says_what_to_install(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "verifiers.v1", None)  # what a missing package looks like to `import`
    path = ROOT / "mmsearch_gym" / "integrations" / f"{module}.py"
    spec = importlib.util.spec_from_file_location(f"_fresh_{module}", path)
    assert spec is not None and spec.loader is not None
    with pytest.raises(ImportError, match=r"^the verifiers adapter needs verifiers 0\.4: "
                                          r"pip install 'mmsearch-gym\[verifiers\]'"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
