"""Replay evaluation throughput: env steps against the floor of doing only the parsing and the raw
cache reads, measured in one run (no asserts; figures go in the README).

Why: in strict replay the environment should add little on top of what any replay must do: parse the
model's turn, read the recorded result (for an image search that includes hashing the question image's
pixels, since the cache is content-addressed), decode the thumbnails for the observation. Targets: >= 10k
text-search steps/s on one core; image-search steps <= 1.2x the get + decode floor.

Run: python perf/eval_throughput.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np

import mmsearch_gym  # noqa: F401
from mmsearch_gym.agents.baselines import OracleAgent
from mmsearch_gym.benchmarks.runner import RunSpec, evaluate
from mmsearch_gym.envs.grammar import parse_action

IMAGE = "<reason>Identify it.</reason><search><img></search>"


def text_action(query: str) -> str:
    return f"<reason>Need a fact.</reason><text_search>{query}</text_search>"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    env = gym.make("ImageSearchVQA-v0").unwrapped
    cache, backend_id, top_k = env.search.cache, env.search.backend_id, env.top_k
    plans = [(i, s, s.meta["plan"][1].split(":", 1)[1]) for i, s in enumerate(env.dataset)
             if s.meta.get("needs") == "image+text"]
    images = {i: s.rgb() for i, s, _ in plans}

    def env_steps() -> tuple[list[float], list[float], list[float]]:
        image_times, text_times, text_only_times = [], [], []
        for index, _, query in plans:
            env.reset(seed=0, options={"index": index})  # a text-only episode: no thumbnails in the dialog
            action = text_action(query)
            start = time.perf_counter()
            env.step(action)
            text_only_times.append(time.perf_counter() - start)
            env.reset(seed=0, options={"index": index})
            start = time.perf_counter()
            env.step(IMAGE)
            image_times.append(time.perf_counter() - start)
            action = text_action(query)
            start = time.perf_counter()
            env.step(action)
            text_times.append(time.perf_counter() - start)
        return image_times, text_times, text_only_times

    def floor_steps() -> tuple[list[float], list[float], list[float]]:
        image_times, text_times = [], []
        for index, _, query in plans:
            start = time.perf_counter()
            parse_action(IMAGE)
            results = cache.get(backend_id, "image", images[index], top_k)  # the cache hashes the pixels
            for item in results.items:
                if item.thumbnail is not None:
                    np.array(item.thumbnail.to_pil().convert("RGB"))
            image_times.append(time.perf_counter() - start)
            action = text_action(query)
            start = time.perf_counter()
            parse_action(action)
            cache.get(backend_id, "text", query, top_k)
            text_times.append(time.perf_counter() - start)
        return image_times, text_times, text_times

    rows: dict[str, list[float]] = {f"{side} {kind}": [] for side in ("env", "floor")
                                    for kind in ("image", "text", "text-only")}
    for _ in range(args.rounds):  # interleaved rounds: the machine is noisy
        for label, run in (("env", env_steps), ("floor", floor_steps)):
            for kind, times in zip(("image", "text", "text-only"), run()):
                rows[f"{label} {kind}"].append(statistics.median(times))
    median = {key: statistics.median(values) for key, values in rows.items()}
    print(f"{len(plans)} image+text episodes of synth-mini, strict replay, {args.rounds} interleaved rounds")
    print(f"{'step':<14}{'env':>12}{'floor':>12}{'ratio':>8}{'env steps/s':>14}")
    for kind in ("image", "text", "text-only"):
        env_s, floor_s = median[f"env {kind}"], median[f"floor {kind}"]
        print(f"{kind + ' search':<14}{env_s * 1e6:>10.1f}µs{floor_s * 1e6:>10.1f}µs{env_s / floor_s:>8.2f}{1 / env_s:>14.0f}")

    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        samples = env.dataset
        spec = RunSpec(samples, env.search)
        start = time.perf_counter()
        evaluate(OracleAgent(samples), spec, scratch)
        elapsed = time.perf_counter() - start
    print(f"whole oracle evaluation (records, fsync, metrics): {len(samples) / elapsed:.0f} episodes/s "
          f"({elapsed:.2f} s for {len(samples)} episodes)")


if __name__ == "__main__":
    main()
