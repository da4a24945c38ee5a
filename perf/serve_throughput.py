"""Served-env throughput: oracle episodes/s over OpenEnv WebSockets against the in-process env, in one run.

Why: trainers on other machines play `ImageSearchVQA-v0` through `mmsearch-gym serve`. Every observation
crosses the wire as JSON with its images as base64 PNG, so a remote episode costs the env's own work plus
PNG encoding (server), JSON on both sides, PNG decoding (client) and one round trip per reset or step.
This script puts a number on each, next to the in-process floor measured in the same run.

What is timed (oracle agent, bundled synth-mini suite, strict replay; medians of interleaved rounds,
because the machine is noisy: see the load average printed at the start and the end):
- in-process: `gym.make("ImageSearchVQA-v0")` played in this process (the floor);
- remote x1: one `RemoteImageSearchVQAEnv` session on a `mmsearch-gym serve` subprocess on 127.0.0.1;
- remote xN: N sessions at once (`--clients`, default 16), each its own `RemoteImageSearchVQAEnv`,
  played from N threads (`--workers threads`) or N processes (`--workers processes`) of the client.
Each round plays `--episodes` episodes (sample i with seed i), split across the clients.
Where the time goes: CPU seconds of the server process and of the client side per episode (from
/proc and `time.process_time`), and the wire's steps timed alone on the same observations.

What it showed (2 busy cores): 16 clients are bound by the server process, one process and one GIL
at about 7 ms of CPU per episode, i.e. at most ~140 episodes/s; the client side needs less than half
of that, so its clients are threads (16 client processes measured slower, 105 against 138 episodes/s,
on 2 cores).

Run: python perf/serve_throughput.py [--rounds 5] [--episodes 300] [--clients 16] [--workers threads]
Before/after a change: PYTHONPATH=<older checkout> python perf/serve_throughput.py (server included).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pathlib
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gymnasium as gym
import httpx
from openenv.core.env_server.serialization import serialize_observation
from openenv.core.env_server.types import WSObservationResponse

import mmsearch_gym  # noqa: F401 - registers the env
from mmsearch_gym.agents.baselines import OracleAgent
from mmsearch_gym.integrations.openenv.client import (
    ImageSearchVQAClient,
    RemoteImageSearchVQAEnv,
    observation_from_wire,
)
from mmsearch_gym.integrations.openenv.models import ImageSearchVQAAction
from mmsearch_gym.integrations.openenv.server import (
    ImageSearchVQAServerEnv,
    shared_env_kwargs,
)
from mmsearch_gym.integrations.openenv.wire import decode, decode_image, encode_image

try:  # each session's memory of the images it sent; absent in older checkouts (every image re-encoded)
    from mmsearch_gym.integrations.openenv.wire import ImageDecoder, ImageEncoder
except ImportError:
    ImageDecoder = ImageEncoder = None  # type: ignore[assignment,misc]

ENV_ID = "ImageSearchVQA-v0"


def start_server(max_sessions: int) -> tuple[subprocess.Popen, str, str]:
    """`mmsearch-gym serve` on a free loopback port; returns (process, ws URL, stderr log path)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tempfile.mkstemp(prefix="serve-throughput-", suffix=".log")[1]
    command = [sys.executable, "-c", "from mmsearch_gym.cli import main; main()", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--max-sessions", str(max_sessions)]
    with open(log, "w") as stderr:  # a file, not a pipe: an undrained pipe would block the server
        # cwd outside the checkout: `python -c` puts the cwd first on sys.path, ahead of PYTHONPATH
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, cwd=tempfile.gettempdir())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited: {pathlib.Path(log).read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0).status_code == 200:
                return process, f"ws://127.0.0.1:{port}", log
        except httpx.HTTPError:
            time.sleep(0.2)
    stop_server(process)
    raise SystemExit("the server did not answer /health within 120 s")


def stop_server(process: subprocess.Popen) -> None:
    """SIGTERM by PID, then SIGKILL if it has not exited within 10 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def play(env: gym.Env, agent: OracleAgent, indices: Sequence[int]) -> int:
    """The oracle's episodes of samples `indices` (seed = index); returns the number of steps."""
    steps = 0
    for index in indices:
        obs, info = env.reset(seed=index, options={"index": index})
        agent.reset(info)
        done = False
        while not done:
            obs, _, terminated, truncated, _ = env.step(agent.act(obs))
            steps += 1
            done = terminated or truncated
    return steps


# --- clients in processes: each worker opens its own session once and keeps it -------------------------
_worker_env: RemoteImageSearchVQAEnv | None = None
_worker_agent: OracleAgent | None = None


def _open_worker_session(url: str) -> None:
    global _worker_env, _worker_agent
    _worker_env = RemoteImageSearchVQAEnv(url)
    _worker_agent = OracleAgent(gym.make(ENV_ID).unwrapped.dataset)


def _play_in_worker(indices: Sequence[int]) -> tuple[int, float]:
    assert _worker_env is not None and _worker_agent is not None
    start = time.process_time()
    steps = play(_worker_env, _worker_agent, indices)
    return steps, time.process_time() - start


def wire_breakdown(dataset: Sequence[Any], indices: Sequence[int], url: str) -> dict[str, float]:
    """CPU milliseconds per episode of each step of the wire, timed alone on the same oracle episodes, and
    the wall time of the round trips an episode needs (with a tiny message)."""
    env = ImageSearchVQAServerEnv(shared_env_kwargs({"dataset": "synth-mini", "search": "replay"}))
    agent = OracleAgent(dataset)
    wire_obs = []
    for index in indices:  # the server-side env produces exactly what the server sends
        observation = env.reset(seed=index, options={"index": index})
        agent.reset(decode(observation.info))
        wire_obs.append(observation)
        while not observation.done:
            observation = env.step(ImageSearchVQAAction(turn=agent.act(observation_from_wire(observation))))
            wire_obs.append(observation)
    env.close()
    gym_env = gym.make(ENV_ID)
    local_obs = []
    for index in indices:
        obs, info = gym_env.reset(seed=index, options={"index": index})
        agent.reset(info)
        local_obs.append(obs)
        done = False
        while not done:
            obs, _, terminated, truncated, _ = gym_env.step(agent.act(obs))
            local_obs.append(obs)
            done = terminated or truncated
    gym_env.close()
    client = ImageSearchVQAClient(base_url=url)

    def timed(fn: Callable[[], object]) -> float:  # CPU time: wall time on a loaded machine counts the others
        start = time.process_time()
        fn()
        return (time.process_time() - start) * 1000 / len(indices)

    texts = [WSObservationResponse(data=serialize_observation(o)).model_dump_json() for o in wire_obs]
    encode_one = ImageEncoder() if ImageEncoder is not None else encode_image  # one session's worth
    decode_one = ImageDecoder() if ImageDecoder is not None else decode_image
    parts = {
        "PNG encode (server)": timed(lambda: [encode_one(i) for o in local_obs for i in o["images"]]),
        "JSON dump (server)": timed(lambda: [WSObservationResponse(data=serialize_observation(o)).model_dump_json()
                                              for o in wire_obs]),
        "JSON load + models (client)": timed(lambda: [client._parse_result(json.loads(t)["data"]) for t in texts]),
        "PNG decode + info (client)": timed(lambda: [([decode_one(i) for i in o.images], decode(o.info))
                                                     for o in wire_obs]),
    }
    remote = RemoteImageSearchVQAEnv(url)
    rtts = []
    for _ in range(50):  # a tiny message: what a round trip costs without a payload
        start = time.perf_counter()
        remote._client.state()
        rtts.append(time.perf_counter() - start)
    remote.close()
    messages_per_episode = len(wire_obs) / len(indices)
    parts["round trips (tiny message)"] = statistics.median(rtts) * 1000 * messages_per_episode
    parts["bytes per episode (kB)"] = sum(len(t) for t in texts) / len(indices) / 1000
    parts["messages per episode"] = messages_per_episode
    parts["images sent per episode"] = sum(len(o.images) for o in wire_obs) / len(indices)
    parts["distinct images per episode"] = len({i for o in wire_obs for i in o.images}) / len(indices)
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=300, help="episodes per round and setting")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", choices=("threads", "processes"), default="threads")
    args = parser.parse_args()

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    local = gym.make(ENV_ID)
    dataset = local.unwrapped.dataset
    indices = [i % len(dataset) for i in range(args.episodes)]
    shards = [indices[k::args.clients] for k in range(args.clients)]
    server, url, log = start_server(max_sessions=args.clients + 4)
    pool: Any = None
    try:
        one = RemoteImageSearchVQAEnv(url)
        if args.workers == "threads":
            many = [RemoteImageSearchVQAEnv(url) for _ in range(args.clients)]
            agents = [OracleAgent(dataset) for _ in range(args.clients)]
            pool = ThreadPoolExecutor(max_workers=args.clients)

            def play_many() -> tuple[int, float]:
                start = time.process_time()
                steps = sum(pool.map(play, many, agents, shards))
                return steps, time.process_time() - start
        else:
            pool = multiprocessing.get_context("spawn").Pool(args.clients, _open_worker_session, (url,))

            def play_many() -> tuple[int, float]:
                results = pool.map(_play_in_worker, shards, chunksize=1)
                return sum(s for s, _ in results), sum(c for _, c in results)

        oracle = OracleAgent(dataset)

        def play_local() -> tuple[int, float]:
            start = time.process_time()
            return play(local, oracle, indices), time.process_time() - start

        def play_one() -> tuple[int, float]:
            start = time.process_time()
            return play(one, oracle, indices), time.process_time() - start

        settings: dict[str, Callable[[], tuple[int, float]]] = {
            "in-process": play_local, "remote x1": play_one, f"remote x{args.clients} ({args.workers})": play_many}
        for run in settings.values():  # warm-up round: imports, caches, thread and process pools
            run()
        rates: dict[str, list[float]] = {name: [] for name in settings}
        server_cpu: dict[str, list[float]] = {name: [] for name in settings}
        client_cpu: dict[str, list[float]] = {name: [] for name in settings}
        for _ in range(args.rounds):  # interleaved: each setting sees the same background load
            for name, run in settings.items():
                server_before, start = cpu_seconds(server.pid), time.perf_counter()
                _, client_s = run()
                elapsed = time.perf_counter() - start
                rates[name].append(len(indices) / elapsed)
                server_cpu[name].append((cpu_seconds(server.pid) - server_before) * 1000 / len(indices))
                client_cpu[name].append(client_s * 1000 / len(indices))
        breakdown = wire_breakdown(dataset, indices[:100], url)
        one.close()
        if args.workers == "threads":
            for env in many:
                env.close()
    finally:
        if pool is not None:
            if args.workers == "threads":
                pool.shutdown()
            else:
                pool.terminate()
        stop_server(server)
        os.unlink(log)

    floor = statistics.median(rates["in-process"])
    print(f"\noracle on synth-mini, strict replay: {len(indices)} episodes per round, median of {args.rounds} "
          f"interleaved rounds (min-max in brackets)")
    print(f"{'setting':<26}{'episodes/s':>22}{'vs in-process':>15}{'server CPU ms/ep':>18}{'client CPU ms/ep':>18}")
    for name in settings:
        rate = statistics.median(rates[name])
        spread = f"[{min(rates[name]):.0f}-{max(rates[name]):.0f}]"
        print(f"{name:<26}{rate:>10.0f} {spread:>11}{rate / floor:>14.3f}x"
              f"{statistics.median(server_cpu[name]):>18.2f}{statistics.median(client_cpu[name]):>18.2f}")
    memory = "with" if ImageEncoder is not None else "without"
    print(f"\nthe wire, timed alone on {len(indices[:100])} of the same episodes, {memory} the sessions' image memory "
          f"(per episode: {breakdown.pop('messages per episode'):.2f} messages, "
          f"{breakdown.pop('bytes per episode (kB)'):.0f} kB of JSON, {breakdown.pop('images sent per episode'):.1f} "
          f"images sent, {breakdown.pop('distinct images per episode'):.1f} distinct):")
    breakdown = {"the env itself (in-process)": 1000 / floor, **breakdown}
    for part, ms in breakdown.items():
        print(f"  {part:<30}{ms:>7.2f} ms/episode")  # CPU ms; the round trips in wall ms
    measured = 1000 / statistics.median(rates["remote x1"])
    print(f"  {'sum':<30}{sum(breakdown.values()):>7.2f} ms/episode; remote x1 measured {measured:.2f}: the rest, "
          f"{measured - sum(breakdown.values()):.2f}, is the frameworks on both sides (uvicorn, Starlette, websockets, "
          f"pydantic models, thread hand-offs)")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
