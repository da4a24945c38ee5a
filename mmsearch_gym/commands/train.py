"""`mmsearch-gym train ...`: GRPO and SFT training on the environment through TRL.

    mmsearch-gym train build-tiny-model runs/tiny-vlm          # offline tiny Qwen2.5-VL for smoke runs
    mmsearch-gym train grpo --config examples/grpo-synth-mini.yaml
    mmsearch-gym train record-oracle --config examples/sft-synth-mini.yaml --out runs/oracle-synth-mini
    mmsearch-gym train sft  --config examples/sft-synth-mini.yaml
    mmsearch-gym train demo --out runs/demo                    # learning to search, end to end on CPU

Multi-process (CPU or GPU): `accelerate launch --num_processes 2 [--cpu] -m mmsearch_gym.commands.train
grpo --config FILE.yaml`. Runs resume from the newest checkpoint in output_dir (`resume: auto`).
torch/transformers/trl are imported only when a command runs, so the CLI starts fast without them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

import typer

app = typer.Typer(help="Train policies on the environment (multi-turn GRPO, SFT on trajectories) with TRL.",
                  no_args_is_help=True)

CONFIG_OPTION = typer.Option(..., "--config", "-c", help="YAML run configuration (see examples/).")
DRY_RUN_OPTION = typer.Option(False, "--dry-run", help="Check the config, print it resolved, and exit.")


def _fail(error: BaseException) -> NoReturn:
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(1)


def _load(path: Path, kind: str):  # -> GRPORunConfig | SFTRunConfig
    from mmsearch_gym.trainers.config import ConfigError, GRPORunConfig, SFTRunConfig, load_config

    try:
        return load_config(path, GRPORunConfig if kind == "grpo" else SFTRunConfig)
    except ConfigError as error:
        _fail(error)


def _run(kind: str, config_path: Path, dry_run: bool) -> None:
    from mmsearch_gym.trainers.config import ConfigError, to_plain

    config = _load(config_path, kind)
    if dry_run:
        typer.echo(json.dumps({"kind": kind, "config": to_plain(config)}, indent=2, sort_keys=True))
        return
    try:
        if kind == "grpo":
            from mmsearch_gym.trainers.grpo import train_grpo

            output = train_grpo(config)
        else:
            from mmsearch_gym.trainers.sft import train_sft

            output = train_sft(config)
    except (ConfigError, FileNotFoundError, ValueError) as error:
        _fail(error)
    typer.echo(f"done: model and checkpoints in {output}, metrics in {Path(output) / config.metrics_file}")


@app.command()
def grpo(config: Path = CONFIG_OPTION, dry_run: bool = DRY_RUN_OPTION) -> None:
    """Multi-turn GRPO: G episodes per sample, env reward, loss on the policy's own tokens only."""
    _run("grpo", config, dry_run)


@app.command()
def sft(config: Path = CONFIG_OPTION, dry_run: bool = DRY_RUN_OPTION) -> None:
    """SFT on recorded trajectories (run directories' episodes.jsonl), assistant tokens only."""
    _run("sft", config, dry_run)


@app.command("record-oracle")
def record_oracle(config: Path = CONFIG_OPTION,
                  out: Path = typer.Option(..., "--out", "-o", help="Run directory to write (resumable).")) -> None:
    """Play the oracle agent on a config's env and write a run directory (episodes.jsonl) to SFT on."""
    from mmsearch_gym.agents.baselines import OracleAgent
    from mmsearch_gym.benchmarks.runner import RunSpec, evaluate
    from mmsearch_gym.trainers.config import ConfigError, SFTRunConfig, load_config
    from mmsearch_gym.trainers.environment import env_kwargs, make_env_factory

    try:
        env_config = load_config(config, SFTRunConfig).env
        factory, samples = make_env_factory(env_config)
        probe = factory()
        spec = RunSpec(samples=samples, search=probe.unwrapped.search, env_kwargs=env_kwargs(env_config),
                       suite_name=env_config.dataset or "synth")
        probe.close()
        metrics = evaluate(OracleAgent(samples), spec, out)
    except (ConfigError, FileNotFoundError, ValueError) as error:
        _fail(error)
    typer.echo(f"oracle run in {out}: accuracy {metrics.get('accuracy')}, {len(samples)} episodes")


@app.command("build-tiny-model")
def build_tiny_model(
    out: Path = typer.Argument(..., help="Directory to write the model folder to."),
    seed: int = typer.Option(0, help="Weight initialisation seed."),
    vocab_size: int = typer.Option(512, help="BPE vocabulary size (>= 278)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing folder."),
) -> None:
    """Write a tiny random Qwen2.5-VL (small trained vocabulary) for offline smoke runs and examples."""
    from mmsearch_gym.trainers.tiny_model import build_tiny_vlm

    try:
        path = build_tiny_vlm(out, seed=seed, vocab_size=vocab_size, overwrite=overwrite)
    except (ValueError, FileExistsError) as error:
        _fail(error)
    typer.echo(f"tiny model in {path}")


@app.command("demo")
def demo(
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (results.json, learning_curves.png, stages)."),
    seed: int = typer.Option(0, help="Seed of the model, training and sampling (the suite is synth-mini's)."),
    toy: bool = typer.Option(False, "--toy", help="Toy scale: every stage runs in about a minute, nothing is learnt."),
    threads: int = typer.Option(1, help="torch CPU threads (1: more oversubscribe a shared 2-core machine)."),
    set_: list[str] = typer.Option([], "--set", help="Override a DemoConfig field, e.g. --set grpo_steps=40."),
) -> None:
    """Learning to search on CPU: SFT on over-searching demonstrations, then GRPO; base/SFT/GRPO evaluated."""
    from mmsearch_gym.benchmarks.demo import TOY, DemoConfig, config_with, run_demo

    try:
        config = config_with(DemoConfig(seed=seed, threads=threads, **(TOY if toy else {})), set_)
        results = run_demo(out, config, log=typer.echo)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        _fail(error)
    for stage in ("base", "sft", "grpo"):
        entry = results[stage]
        typer.echo(f"{stage:5s} accuracy {entry['accuracy']:.3f}  search ratio free/required "
                   f"{entry['search_ratio_by_category']['search_free']:.3f}/"
                   f"{entry['search_ratio_by_category']['search_required']:.3f}  format {entry['format_rate']:.3f}")
    typer.echo(f"results in {out / 'results.json'}, curves in {out / 'learning_curves.png'} "
               f"({results['wall_seconds']:.0f} s)")


if __name__ == "__main__":  # `python -m mmsearch_gym.commands.train ...` (e.g. under accelerate launch)
    app()
