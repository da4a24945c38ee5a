"""The env served through openenv-core on loopback: the wire changes nothing.

A real `mmsearch-gym serve` process on 127.0.0.1 (stopped by PID), played with openenv-core's own
clients (the generic dict client, our typed `EnvClient` subclass) and with `RemoteImageSearchVQAEnv`;
every reward, message, info and image byte is compared with the local env for the same seed and
actions (the oracle's trajectories on 50 samples).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("openenv.core", reason="the `serve` extra (openenv-core) is not installed")

import httpx  # noqa: E402
from openenv.core.generic_client import GenericEnvClient  # noqa: E402
from websockets.sync.client import connect as ws_connect  # noqa: E402

import mmsearch_gym  # noqa: E402,F401
from mmsearch_gym.agents.baselines import OracleAgent  # noqa: E402
from mmsearch_gym.integrations.openenv.client import (  # noqa: E402
    ImageSearchVQAClient,
    RemoteEnvError,
    RemoteImageSearchVQAEnv,
)
from mmsearch_gym.integrations.openenv.models import ImageSearchVQAAction  # noqa: E402
from mmsearch_gym.integrations.openenv.wire import (  # noqa: E402
    ImageDecoder,
    ImageEncoder,
    decode,
    decode_image,
    encode_image,
)

ENV_ID = "ImageSearchVQA-v0"
N_SAMPLES = 50


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A served env: its process, its URL, and the file its stderr goes to.

    Why a file and not a pipe: a pipe that nobody drains fills up (64 kB) and then blocks the server,
    its event loop included, on its next log line; every client would time out and the cause would
    look like load."""

    def __init__(self, process: subprocess.Popen, url: str, log: Path) -> None:
        self.process, self.url, self.log = process, url, log

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _start_server(*args: str, timeout_s: float = 90.0) -> Server:
    port = _free_port()
    command = [sys.executable, "-c", "from mmsearch_gym.cli import main; main()", "serve",
               "--host", "127.0.0.1", "--port", str(port), *args]
    log = Path(tempfile.mkstemp(prefix="mmsearch-serve-", suffix=".log")[1])
    with log.open("w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, text=True)
    served = Server(process, f"ws://127.0.0.1:{port}", log)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited early: {served.log_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0).status_code == 200:
                return served
        except httpx.HTTPError:
            time.sleep(0.2)
    _stop(served)
    raise AssertionError(f"server did not answer /health in time: {served.log_text()}")


def _stop(served: Server) -> None:
    process = served.process
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    served.log.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def served() -> Iterator[Server]:
    running = _start_server("--max-sessions", "40", "--idle-timeout", "30")
    try:
        yield running
    finally:
        _stop(running)


@pytest.fixture(scope="module")
def server(served: Server) -> str:
    return served.url


@pytest.fixture(scope="module")
def local_env() -> Iterator[gym.Env]:
    env = gym.make(ENV_ID)
    yield env
    env.close()


@pytest.fixture(scope="module")
def oracle(local_env: gym.Env) -> OracleAgent:
    return OracleAgent(local_env.unwrapped.dataset)


def _play(env: gym.Env, agent: OracleAgent, index: int) -> list[tuple[Any, ...]]:
    """The whole oracle episode of sample `index` (seed = index): every return value, in order."""
    obs, info = env.reset(seed=index, options={"index": index})
    agent.reset(info)
    trace: list[tuple[Any, ...]] = [(obs, info)]
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(agent.act(obs))
        trace.append((obs, reward, terminated, truncated, info))
        done = terminated or truncated
    return trace


def _assert_same_observation(remote: dict, local: dict) -> None:
    assert remote["messages"] == local["messages"]
    assert isinstance(remote["messages"], tuple) and isinstance(remote["images"], tuple)
    assert len(remote["images"]) == len(local["images"])
    for got, want in zip(remote["images"], local["images"]):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes()


def _assert_same_trace(remote: list[tuple[Any, ...]], local: list[tuple[Any, ...]]) -> None:
    assert len(remote) == len(local)
    for got, want in zip(remote, local):
        _assert_same_observation(got[0], want[0])
        assert got[1:] == want[1:]  # reward, terminated, truncated, info: equal values and types
        for a, b in zip(got[1:], want[1:]):
            assert type(a) is type(b)


def test_remote_env_equals_local_env_on_oracle_trajectories(server: str, local_env: gym.Env,
                                                            oracle: OracleAgent) -> None:
    remote = RemoteImageSearchVQAEnv(server)
    try:
        assert remote.observation_space == local_env.observation_space or \
            repr(remote.observation_space) == repr(local_env.observation_space)
        for index in range(N_SAMPLES):
            _assert_same_trace(_play(remote, oracle, index), _play(local_env, oracle, index))
    finally:
        remote.close()


def test_gym_make_with_server_gives_the_remote_env(server: str, local_env: gym.Env, oracle: OracleAgent) -> None:
    env = gym.make(ENV_ID, server=server)
    try:
        assert isinstance(env.unwrapped, RemoteImageSearchVQAEnv)
        _assert_same_trace(_play(env, oracle, 7), _play(local_env, oracle, 7))
    finally:
        env.close()


def test_openenv_generic_client_sees_the_local_episode(server: str, local_env: gym.Env,
                                                       oracle: OracleAgent) -> None:
    """openenv-core's own dict client: rewards, messages and PNG image bytes match the local env."""

    async def play(index: int) -> list[dict[str, Any]]:
        steps = []
        async with GenericEnvClient(base_url=server) as client:
            result = await client.reset(seed=index, options={"index": index})
            steps.append({"obs": result.observation, "reward": result.reward, "done": result.done})
            oracle.reset(decode(result.observation["info"]))
            while not result.done:
                local_obs = {"messages": tuple(result.observation["messages"]),
                             "images": tuple(decode_image(i) for i in result.observation["images"])}
                result = await client.step({"turn": oracle.act(local_obs)})
                steps.append({"obs": result.observation, "reward": result.reward, "done": result.done})
        return steps

    for index in (0, 1, 2, 3, 4):
        remote = asyncio.run(play(index))
        local = _play(local_env, oracle, index)
        assert len(remote) == len(local)
        for got, want in zip(remote, local):
            assert tuple(got["obs"]["messages"]) == want[0]["messages"]
            assert [decode_image(i).tobytes() for i in got["obs"]["images"]] == \
                [image.tobytes() for image in want[0]["images"]]
            assert decode(got["obs"]["info"]) == want[-1]
            if len(want) == 5:
                assert got["reward"] == want[1] and got["done"] == (want[2] or want[3])


def test_typed_openenv_client_and_state(server: str) -> None:
    async def play() -> tuple[Any, Any]:
        async with ImageSearchVQAClient(base_url=server) as client:
            await client.reset(seed=0, options={"index": 0})
            result = await client.step(ImageSearchVQAAction(turn="<reason>r</reason><answer>x</answer>"))
            return result, await client.state()

    result, state = asyncio.run(play())
    assert result.done and result.observation.done and isinstance(result.reward, float)
    assert state.step_count == 1 and state.done and state.sample_id is not None
    assert state.settings["max_turns"] == 3


def test_32_concurrent_sessions_keep_their_own_state(served: Server, local_env: gym.Env,
                                                     oracle: OracleAgent) -> None:
    """All 32 sessions open at once, then each plays its own sample's oracle episode; every trace equals
    the local one. The timeouts are generous (2 busy cores, 64 client threads) but bounded, and a
    failure shows the server's log."""
    expected = {index: _play(local_env, oracle, index) for index in range(32)}
    results: dict[int, Any] = {}
    errors: list[str] = []
    barrier = threading.Barrier(32)

    def worker(index: int) -> None:
        try:
            env = RemoteImageSearchVQAEnv(served.url, connect_timeout_s=120, message_timeout_s=120)
            try:
                barrier.wait(timeout=240)  # every session open at once before any episode starts
                results[index] = _play(env, OracleAgent(local_env.unwrapped.dataset), index)
            finally:
                env.close()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(f"session {index}: {type(error).__name__}: {error}")

    threads = [threading.Thread(target=worker, args=(index,), daemon=True) for index in range(32)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 480
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = [index for index, thread in enumerate(threads) if thread.is_alive()]
    assert not errors and not stuck, (errors, f"still running: {stuck}", served.log_text()[-4000:])
    for index in range(32):
        _assert_same_trace(results[index], expected[index])


def test_closed_sessions_leave_no_traceback_in_the_server_log(served: Server) -> None:
    """A client that closes its session (the `close` message, then the socket) is normal use: the
    server logs nothing. openenv-core's handler used to raise on closing an already-closed socket,
    one traceback per session, until a pipe for stderr filled and blocked the server."""
    for _ in range(3):
        env = RemoteImageSearchVQAEnv(served.url)
        env.reset(seed=0)
        env.close()
    with _raw(served.url) as connection:  # and a client that just drops the socket
        connection.send(json.dumps({"type": "reset", "data": {"seed": 0}}))
        _reply(connection)
    base = served.url.replace("ws://", "http://")
    assert httpx.get(f"{base}/health", timeout=30).status_code == 200  # the log is written by now
    log = served.log_text()
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log[-4000:]


def _raw(url: str) -> Any:
    return ws_connect(f"{url}/ws", open_timeout=10, max_size=64 * 1024 * 1024)


def _reply(connection: Any) -> dict[str, Any]:
    return json.loads(connection.recv(timeout=30))


def test_protocol_errors_get_error_replies_and_the_server_keeps_serving(server: str) -> None:
    with _raw(server) as connection:
        connection.send(json.dumps({"type": "step", "data": {"turn": "<reason>r</reason><answer>a</answer>"}}))
        before_reset = _reply(connection)
        assert before_reset["type"] == "error" and before_reset["data"]["code"] == "EXECUTION_ERROR"
        assert "reset" in before_reset["data"]["message"].lower()

        connection.send("{not json")
        assert _reply(connection)["data"]["code"] == "INVALID_JSON"

        connection.send(json.dumps({"type": "teleport"}))
        unknown = _reply(connection)
        assert unknown["type"] == "error" and unknown["data"]["code"] == "UNKNOWN_TYPE"

        connection.send(json.dumps({"type": "reset", "data": {"seed": 0}}))
        assert _reply(connection)["type"] == "observation"
        connection.send(json.dumps({"type": "step", "data": {"turn": "x" * 2_000_001}}))
        oversized = _reply(connection)
        assert oversized["type"] == "error" and oversized["data"]["code"] == "VALIDATION_ERROR"

        connection.send(json.dumps({"type": "step", "data": {"turn": "<reason>r</reason><answer>a</answer>"}}))
        after = _reply(connection)
        assert after["type"] == "observation" and after["data"]["done"] is True
    remote = RemoteImageSearchVQAEnv(server)
    try:
        with pytest.raises(RemoteEnvError, match="options"):
            remote.reset(options={"index": 10**9})
        obs, info = remote.reset(seed=1)
        assert info["turn"] == 0 and len(obs["images"]) == 1
    finally:
        remote.close()


def test_server_does_not_deflate_its_messages(server: str) -> None:
    """Per-message deflate is off (`serve(ws_compression=False)`): base64 PNG barely compresses, and
    compressing ran on the server's event loop, its busiest thread. A client offering it gets none."""
    with _raw(server) as connection:  # websockets offers permessage-deflate by default
        assert "permessage-deflate" not in connection.response.headers.get("Sec-WebSocket-Extensions", "")


def test_http_endpoints(server: str) -> None:
    base = server.replace("ws://", "http://")
    assert httpx.get(f"{base}/health", timeout=10).json()["status"] == "healthy"
    schema = httpx.get(f"{base}/schema", timeout=10).json()
    assert "turn" in schema["action"]["properties"] and "images" in schema["observation"]["properties"]
    assert httpx.get(f"{base}/metadata", timeout=10).json()["name"] == ENV_ID
    reset = httpx.post(f"{base}/reset", json={"seed": 0}, timeout=30).json()
    assert reset["observation"]["messages"][0]["role"] == "user"
    step = httpx.post(f"{base}/step", json={"action": {"turn": "<reason>r</reason><answer>a</answer>"}},
                      timeout=30)
    assert step.status_code in (200, 400, 422, 500)  # stateless: a fresh env per request


def test_killed_client_frees_its_slot_within_the_idle_timeout() -> None:
    running = _start_server("--max-sessions", "1", "--idle-timeout", "2")
    url = running.url
    try:
        client = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
            import json, sys, time
            from websockets.sync.client import connect
            connection = connect("{url}/ws", open_timeout=10)
            connection.send(json.dumps({{"type": "reset", "data": {{"seed": 0}}}}))
            connection.recv(timeout=30)
            print("playing", flush=True)
            time.sleep(600)
            """)], stdout=subprocess.PIPE, text=True)
        assert client.stdout.readline().strip() == "playing"
        with pytest.raises(RemoteEnvError):  # the only slot is taken
            RemoteImageSearchVQAEnv(url).reset(seed=0)
        os.kill(client.pid, signal.SIGKILL)
        client.wait(timeout=10)
        deadline = time.monotonic() + 2 + 10
        while True:
            try:
                env = RemoteImageSearchVQAEnv(url)
                env.reset(seed=0)
                env.close()
                break
            except RemoteEnvError:
                assert time.monotonic() < deadline, "the killed client's slot was never freed"
                time.sleep(0.25)
    finally:
        _stop(running)


def test_bad_server_settings_fail_with_one_line() -> None:
    result = subprocess.run([sys.executable, "-c", "from mmsearch_gym.cli import main; main()", "serve",
                             "--port", str(_free_port()), "--env", "max_turns=0"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "max_turns" in result.stderr and "Traceback" not in result.stderr


def test_wire_codec_round_trips_info_values() -> None:
    value = {"a": (1, 2.5, None, "x"), "b": [True, {"c": np.int64(3)}], "nan": float("nan"),
             "img": np.arange(12, dtype=np.uint8).reshape(2, 2, 3)}
    back = decode(json.loads(json.dumps(__import__("mmsearch_gym.integrations.openenv.wire",
                                                   fromlist=["encode"]).encode(value))))
    assert back["a"] == (1, 2.5, None, "x") and back["b"][1]["c"] == 3
    assert isinstance(back["b"][1]["c"], np.int64) and np.isnan(back["nan"])
    assert back["img"].tobytes() == value["img"].tobytes()


_small_images = st.builds(
    lambda height, width, seed: np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8),
    st.integers(1, 6), st.integers(1, 6), st.integers(0, 3))


@settings(max_examples=60, deadline=None)
@given(st.lists(_small_images, min_size=1, max_size=12), st.integers(1, 4))
def test_session_image_memory_sends_and_returns_what_a_fresh_codec_would(images: list[np.ndarray],
                                                                         max_entries: int) -> None:
    """Repeats (same pixels, or the same bytes in another shape), evictions: the encoder's payload is
    always the fresh encode of those pixels, and the decoder always hands back a fresh equal array."""
    encoder, decoder = ImageEncoder(max_entries), ImageDecoder(max_entries)
    for pixels in images + images[::-1] + [image.reshape(image.shape[1], image.shape[0], 3) for image in images]:
        payload = encoder(pixels)
        assert payload == encode_image(pixels)
        first, again = decoder(payload), decoder(payload)
        assert first.tobytes() == pixels.tobytes() and first.shape == pixels.shape and first.dtype == np.uint8
        assert first is not again and first.flags.writeable
        first[...] = 0  # what a caller does to its observation must not reach the next one
        assert decoder(payload).tobytes() == pixels.tobytes()
    assert len(encoder._encoded) <= max_entries and len(decoder._decoded) <= max_entries


def test_session_image_encoder_refuses_what_encode_image_refuses() -> None:
    with pytest.raises(ValueError, match="RGB uint8"):
        ImageEncoder()(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="RGB uint8"):
        ImageEncoder()(np.zeros((2, 2), np.uint8))


def test_container_app_reads_its_settings_from_the_environment() -> None:
    from mmsearch_gym.integrations.openenv.app import settings_from_environment

    kwargs, sessions, idle = settings_from_environment({"MMSEARCH_GYM_ENV": '{"max_turns": 4}',
                                                        "MMSEARCH_GYM_MAX_SESSIONS": "3"})
    assert kwargs == {"dataset": "synth-mini", "search": "replay", "max_turns": 4}
    assert (sessions, idle) == (3, 300.0)
    with pytest.raises(ValueError, match="MMSEARCH_GYM_ENV"):
        settings_from_environment({"MMSEARCH_GYM_ENV": "[1]"})


def test_deploy_files_point_at_an_importable_app() -> None:
    import importlib
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1] / "deploy" / "openenv"
    spec = yaml.safe_load((root / "openenv.yaml").read_text())
    module_name, _, attribute = spec["app"].partition(":")
    assert hasattr(importlib.import_module(module_name), attribute)
    dockerfile = (root / "Dockerfile").read_text()
    assert spec["app"] in dockerfile and '".[serve]"' in dockerfile


def test_eval_over_the_wire_gives_byte_identical_metrics(server: str, tmp_path: Path) -> None:
    """`mmsearch-gym eval --server` writes the same run directory as a local eval of the same agents."""
    from typer.testing import CliRunner

    from mmsearch_gym.cli import app

    runner = CliRunner()
    common = ["eval", "--agents", "oracle,rag", "--limit", "40", "--batch-size", "4"]
    local = runner.invoke(app, [*common, "--out", str(tmp_path / "local")])
    remote = runner.invoke(app, [*common, "--out", str(tmp_path / "remote"), "--server", server])
    assert local.exit_code == 0, local.output
    assert remote.exit_code == 0, remote.output
    for agent in ("oracle", "rag"):
        for name in ("metrics.json", "episodes.jsonl", "manifest.json"):
            assert (tmp_path / "remote" / agent / name).read_bytes() == \
                (tmp_path / "local" / agent / name).read_bytes(), (agent, name)


def test_eval_refuses_a_server_with_other_settings(server: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mmsearch_gym.cli import app

    result = CliRunner().invoke(app, ["eval", "--agents", "oracle", "--limit", "2", "--env", "max_turns=4",
                                      "--server", server, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "max_turns=3" in result.output and "Traceback" not in result.output
