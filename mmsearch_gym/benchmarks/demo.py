"""Learning to search, end to end on CPU: `mmsearch-gym train demo --out DIR [--seed N]`.

Reproduces MMSearch-R1's SFT-vs-RL experiment in miniature with the project's public components only:

1. regenerate the synthetic suite and its web corpus (`demo_data.build_demo_suite`; searches go to
   `LocalCorpusBackend`, so the policy's own queries get real answers);
2. record over-searching demonstrations on the TRAIN split through `ImageSearchVQA-v0` (`evaluate()`
   with `demo_data.OverSearchAgent`: image search first on every question);
3. build a small-vocabulary Qwen2.5-VL (`tiny_model.build_tiny_vlm`, tokenizer trained on the
   demonstrations' texts);
4. SFT on the demonstrations (`sft.TrajectoryCollator`, `sft.TrajectorySFTTrainer`);
5. GRPO from the SFT checkpoint (`grpo.MultiTurnGRPOTrainer`, the env's reward with MMSearch-R1's
   defaults and the search penalty on);
6. evaluate base, SFT and SFT+GRPO on the test split with `evaluate()` and `TransformersAgent`, same
   greedy generation settings for all three.

Outputs in DIR: results.json (per stage accuracy, search ratios, format rate, mean reward, run dir;
wall time, seed, package version), learning_curves.png, and every stage's folder. Finished stages are
reused when the command is run again on the same DIR with the same settings (each stage folder has a
marker), so an interrupted demo resumes. Why the design choices: docs/learning-to-search.md.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmsearch_gym.checks import require_int, require_number
from mmsearch_gym.benchmarks.demo_data import (
    DemoSuite,
    OverSearchAgent,
    SuiteScale,
    build_demo_suite,
    demo_env_kwargs,
    message_texts,
)

STAGES = ("base", "sft", "grpo")
CATEGORIES = ("search_free", "search_required")
DONE = ".complete"


@dataclass(frozen=True)
class DemoConfig:
    """Everything the demo's numbers depend on (written to results.json)."""

    seed: int = 0
    suite: SuiteScale = field(default_factory=SuiteScale)
    top_k: int = 1
    """Results per search (1: the best image match's title, the best text match's summary)."""
    # model
    vocab_size: int = 1024
    hidden_size: int = 128
    num_layers: int = 3
    num_heads: int = 4
    intermediate_size: int = 256
    vision_hidden_size: int = 64
    max_image_tokens: int = 9
    # SFT
    sft_epochs: float = 6.0
    sft_learning_rate: float = 2e-3
    sft_batch_size: int = 8
    # GRPO
    grpo_steps: int = 40
    grpo_prompts_per_step: int = 8
    num_generations: int = 8
    grpo_learning_rate: float = 2e-4
    beta: float = 0.0
    temperature: float = 1.0
    penalty_warmup_steps: int = 0
    explore: float = 0.3
    """Share of GRPO episodes whose turn-one action tag is drawn uniformly (`demo_probe.FirstActionExploration`)."""
    # generation (all stages, evaluation greedy)
    max_new_tokens: int = 24
    eval_batch_size: int = 100
    probe_samples: int = 100
    """Test questions on which the first action's probabilities are measured (`demo_probe`; 0: none)."""
    threads: int | None = 1
    """torch CPU threads (1: on a shared 2-core machine more threads oversubscribe and run ~5x slower)."""

    def __post_init__(self) -> None:
        for name in ("seed", "top_k", "vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                     "vision_hidden_size",
                     "max_image_tokens", "sft_batch_size", "grpo_steps", "grpo_prompts_per_step", "num_generations",
                     "penalty_warmup_steps", "max_new_tokens", "eval_batch_size", "probe_samples"):
            require_int(name, getattr(self, name), low=0 if name in ("seed", "penalty_warmup_steps", "probe_samples")
                        else 1)
        require_int("num_generations", self.num_generations, low=2)
        for name in ("sft_epochs", "sft_learning_rate", "grpo_learning_rate", "temperature"):
            require_number(name, getattr(self, name), low=0.0)
        require_number("explore", self.explore, low=0.0, high=1.0)
        require_number("beta", self.beta, low=0.0)
        if self.threads is not None:
            require_int("threads", self.threads, low=1)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


TOY: dict[str, Any] = {
    "suite": SuiteScale(n_test=6, n_train=12, n_entities_test=3, n_entities_train=6, n_distractors=2),
    "vocab_size": 320, "hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64,
    "vision_hidden_size": 16, "max_image_tokens": 4, "sft_epochs": 1.0, "sft_batch_size": 4, "grpo_steps": 2,
    "grpo_prompts_per_step": 2, "num_generations": 2, "max_new_tokens": 8,
}
"""Settings of the fast end-to-end test (`DemoConfig(**TOY)`): every stage runs, nothing is learnt."""


# --------------------------------------------------------------------------------------------- stages

def _done(folder: Path, settings: dict[str, Any]) -> bool:
    marker = folder / DONE
    return marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == settings


def _mark(folder: Path, settings: dict[str, Any]) -> None:
    (folder / DONE).write_text(json.dumps(settings, sort_keys=True), encoding="utf-8")


class Demo:
    """The pipeline's stages on one output directory; `run()` runs them all."""

    def __init__(self, out_dir: str | Path, config: DemoConfig = DemoConfig(),
                 log: Callable[[str], None] = print) -> None:
        self.out = Path(out_dir)
        self.config = config
        self.log = log
        self.settings = json.loads(json.dumps(config.to_dict()))
        self._suite: DemoSuite | None = None
        self._backend: Any = None

    # ------------------------------------------------------------------------------------ shared

    @property
    def suite(self) -> DemoSuite:
        if self._suite is None:
            scale = self.config.suite
            self._suite = build_demo_suite(self.out / f"suite-{scale.seed}", scale)
        return self._suite

    @property
    def backend(self) -> Any:
        if self._backend is None:
            from mmsearch_gym.search.local import LocalCorpusBackend

            self._backend = LocalCorpusBackend(self.suite.corpus_dir)
        return self._backend

    def env_kwargs(self, penalty_warmup_steps: int = 0) -> dict[str, Any]:
        from mmsearch_gym.envs.reward import RewardConfig

        kwargs = demo_env_kwargs(self.config.top_k)
        kwargs["reward"] = RewardConfig(penalty_warmup_steps=penalty_warmup_steps)
        return kwargs

    def make_env_factory(self, samples: Sequence[Any], penalty_warmup_steps: int = 0) -> Callable[[], Any]:
        import gymnasium as gym

        from mmsearch_gym.registration import ENV_ID

        kwargs = self.env_kwargs(penalty_warmup_steps)
        backend = self.backend
        return lambda: gym.make(ENV_ID, dataset=list(samples), search=backend, **kwargs)

    # ------------------------------------------------------------------------------------ stages

    def record_demonstrations(self) -> Path:
        """Over-searching demonstrations on the train split (a run directory)."""
        from mmsearch_gym.benchmarks.runner import RunSpec, evaluate

        folder = self.out / "demonstrations"
        settings = {"suite": self.settings["suite"], "top_k": self.config.top_k}
        if not _done(folder, settings):
            spec = RunSpec(self.suite.train, self.backend, self.env_kwargs(), suite_name="synth-train")
            metrics = evaluate(OverSearchAgent(self.suite.train), spec, folder, batch_size=64)
            self.log(f"demonstrations: {len(self.suite.train)} episodes, accuracy {metrics['accuracy']:.3f}, "
                     f"search ratio {metrics['search_ratio']:.3f}")
            _mark(folder, settings)
        return folder

    def build_model(self, demonstrations: Path) -> Path:
        from mmsearch_gym.runs import RECORDS_FILE, RecordsFile
        from mmsearch_gym.trainers.tiny_model import build_tiny_vlm

        folder = self.out / "base-model"
        keys = ("seed", "vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size", "vision_hidden_size",
                "max_image_tokens", "suite", "top_k")
        settings = {key: self.settings[key] for key in keys}
        if not _done(folder, settings):
            texts = list(message_texts(RecordsFile(demonstrations / RECORDS_FILE).ordered()))
            c = self.config
            build_tiny_vlm(folder, seed=c.seed, vocab_size=c.vocab_size, hidden_size=c.hidden_size,
                           num_layers=c.num_layers, num_heads=c.num_heads, vision_hidden_size=c.vision_hidden_size,
                           max_image_tokens=c.max_image_tokens, intermediate_size=c.intermediate_size, texts=texts,
                           overwrite=True)
            _mark(folder, settings)
        return folder

    def sft(self, base: Path, demonstrations: Path) -> Path:
        from mmsearch_gym.trainers.demo_train import run_sft

        folder = self.out / "sft"
        settings = {key: self.settings[key] for key in ("sft_epochs", "sft_learning_rate", "sft_batch_size", "seed")}
        settings["base"] = json.loads((base / DONE).read_text(encoding="utf-8"))
        if not _done(folder, settings):
            run_sft(self, base, demonstrations, folder)
            _mark(folder, settings)
        return folder

    def grpo(self, sft: Path) -> Path:
        from mmsearch_gym.trainers.demo_train import run_grpo

        folder = self.out / "grpo"
        keys = ("grpo_steps", "grpo_prompts_per_step", "num_generations", "grpo_learning_rate", "beta",
                "temperature", "penalty_warmup_steps", "explore", "max_new_tokens")
        settings = {key: self.settings[key] for key in keys}
        settings["sft"] = json.loads((sft / DONE).read_text(encoding="utf-8"))
        if not _done(folder, settings):
            run_grpo(self, sft, folder)
            _mark(folder, settings)
        return folder

    def evaluate(self, stage: str, model_dir: Path) -> dict[str, Any]:
        """The stage's model on the test split: `evaluate()` with `TransformersAgent`, greedy."""
        from mmsearch_gym.agents.hf import TransformersAgent
        from mmsearch_gym.benchmarks.runner import RunSpec, evaluate

        run_dir = self.out / "eval" / stage
        agent = TransformersAgent(model_dir, max_new_tokens=self.config.max_new_tokens, temperature=0.0,
                                  seed=self.config.seed, name=f"demo-{stage}")
        spec = RunSpec(self.suite.test, self.backend, self.env_kwargs(), suite_name=self.suite.suite_name,
                       suite_hash=self.suite.test_hash)
        started = time.perf_counter()
        metrics = evaluate(agent, spec, run_dir, batch_size=self.config.eval_batch_size)
        by_category = metrics.get("by_category", {})
        result = {
            "accuracy": metrics["accuracy"], "search_ratio": metrics["search_ratio"],
            "search_ratio_by_category": {name: by_category.get(name, {}).get("search_ratio", 0.0)
                                         for name in CATEGORIES},
            "accuracy_by_category": {name: by_category.get(name, {}).get("accuracy", 0.0) for name in CATEGORIES},
            "format_rate": metrics["format_rate"], "mean_reward": metrics["mean_reward"],
            "searches_per_episode": metrics.get("searches_per_episode"), "episodes": len(self.suite.test),
            "run_dir": str(run_dir), "model_dir": str(model_dir),
            "eval_seconds": round(time.perf_counter() - started, 1),
        }
        if self.config.probe_samples:
            from mmsearch_gym.trainers.demo_probe import first_action_probabilities

            probe = self.suite.test[:self.config.probe_samples]
            result["first_action_probability"] = first_action_probabilities(model_dir, probe,
                                                                            self.make_env_factory(probe))
        self.log(f"{stage}: accuracy {result['accuracy']:.3f}, search ratio {result['search_ratio']:.3f} "
                 f"{result['search_ratio_by_category']}, format {result['format_rate']:.3f}")
        return result

    # -------------------------------------------------------------------------------------- run

    def run(self) -> dict[str, Any]:
        import mmsearch_gym

        started = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        if self.config.threads is not None:
            from mmsearch_gym.trainers.demo_train import use_threads

            use_threads(self.config.threads)
        timings: dict[str, float] = {}

        def timed(name: str, call: Callable[[], Any]) -> Any:
            begin = time.perf_counter()
            value = call()
            timings[name] = round(time.perf_counter() - begin, 1)
            self.log(f"[{name}] {timings[name]:.1f} s")
            return value

        timed("suite", lambda: self.backend)
        demonstrations = timed("demonstrations", self.record_demonstrations)
        base = timed("build_model", lambda: self.build_model(demonstrations))
        sft = timed("sft", lambda: self.sft(base, demonstrations))
        grpo = timed("grpo", lambda: self.grpo(sft))
        stages = {stage: timed(f"eval_{stage}", functools.partial(self.evaluate, stage, model))
                  for stage, model in (("base", base), ("sft", sft), ("grpo", grpo))}
        results = {
            **stages,
            "wall_seconds": round(time.perf_counter() - started, 1),
            "stage_seconds": timings,
            "seed": self.config.seed,
            "package": "mmsearch-gym",
            "package_version": mmsearch_gym.__version__,
            "suite": self.suite.suite_name,
            "suite_hash": self.suite.test_hash,
            "search": f"live LocalCorpusBackend over the regenerated corpus ({self.suite.corpus_dir})",
            "config": self.settings,
            "grpo_curves": str(grpo / "curves.jsonl"),
        }
        (self.out / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        from mmsearch_gym.trainers.demo_plot import plot_learning_curves

        plot_learning_curves(grpo / "curves.jsonl", self.out / "learning_curves.png", results)
        return results


def run_demo(out_dir: str | Path, config: DemoConfig = DemoConfig(),
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the whole demo into `out_dir`; returns what results.json holds."""
    return Demo(out_dir, config, log).run()


def config_with(base: DemoConfig, overrides: Sequence[str]) -> DemoConfig:
    """`base` with `KEY=VALUE` overrides (CLI `--set`); values are parsed as JSON, else kept as text.
    Suite sizes are `suite.FIELD=VALUE` (a `SuiteScale` field). ValueError names an unknown key."""
    known = sorted(f.name for f in dataclasses.fields(DemoConfig) if f.name != "suite")
    known += sorted(f"suite.{f.name}" for f in dataclasses.fields(SuiteScale))
    values: dict[str, Any] = {}
    suite: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or key not in known:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE with KEY one of {known}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        if key.startswith("suite."):
            suite[key.removeprefix("suite.")] = value
        else:
            values[key] = value
    if suite:
        values["suite"] = dataclasses.replace(base.suite, **suite)
    return dataclasses.replace(base, **values)
