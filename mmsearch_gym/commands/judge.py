"""`mmsearch-gym judge RUN_DIR`: add LLM-judged accuracy beside exact match in `metrics.json`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

console = Console()


def judge_command(
    run_dir: Path = typer.Argument(..., help="A run directory written by `mmsearch-gym eval` (one agent)."),
    model: str = typer.Option(..., help="Judge model name at the endpoint."),
    base_url: str = typer.Option("https://api.openai.com/v1", help="OpenAI-compatible endpoint."),
    suite: Optional[str] = typer.Option(None, help="Suite of the run (default: the one in manifest.json)."),
    cache_dir: Optional[Path] = typer.Option(None, help="Verdict cache (default: RUN_DIR/../.judge-cache)."),
    include_image: bool = typer.Option(True, help="Send the question image to the judge."),
    max_retries: int = typer.Option(4, min=0, help="Retries of a request after 429/5xx/timeouts."),
) -> None:
    """Judge every final answer with an LLM; verdicts are cached, so re-judging a run is free.

    The API key comes from OPENAI_API_KEY (or `user:key@` in --base-url); it is never written to
    judged.json, metrics.json or the verdict cache."""
    from mmsearch_gym.benchmarks.judge import LLMJudge, judge_records
    from mmsearch_gym.benchmarks.records import RECORDS_FILE, RecordsFile, write_json_atomic
    from mmsearch_gym.benchmarks.runner import MANIFEST_FILE, METRICS_FILE
    from mmsearch_gym.data.suites import resolve_dataset

    if not (run_dir / MANIFEST_FILE).is_file():
        console.print(f"[red]error:[/red] {str(run_dir)!r} is not a run directory of one agent written by "
                      f"`mmsearch-gym eval` (no {MANIFEST_FILE}); pass e.g. RUN/oracle")
        raise typer.Exit(2)
    try:
        manifest = json.loads((run_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
        metrics = json.loads((run_dir / METRICS_FILE).read_text(encoding="utf-8"))
        samples = {s.id: s for s in resolve_dataset(suite or manifest["suite"])}
        records = RecordsFile(run_dir / RECORDS_FILE).ordered()
        missing = [r["sample_id"] for r in records if r["sample_id"] not in samples]
        if missing:
            raise ValueError(f"{len(missing)} episode(s) are not in the suite, e.g. {missing[0]!r}; pass --suite")
        items = [{"sample_id": r["sample_id"], "question": samples[r["sample_id"]].question, "answer": r["answer"],
                  "gold": list(samples[r["sample_id"]].answers),
                  "candidates": list(samples[r["sample_id"]].candidate_answers)} for r in records]
        with LLMJudge(model, base_url=base_url, include_image=include_image, max_retries=max_retries,
                      cache_dir=cache_dir or run_dir.parent / ".judge-cache") as judge:
            judged = judge_records(items, judge, images=lambda sample_id: samples[sample_id].image,
                                   on_error="record")
    except (OSError, ValueError, KeyError) as error:
        console.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(2) from None
    write_json_atomic(run_dir / "judged.json", judged.to_dict())
    metrics["judged_accuracy"] = round(judged.accuracy, 6)
    metrics["judge"] = {"model": judged.judge_model, "prompt_version": judged.prompt_version,
                        "errors": judged.n_errors}
    write_json_atomic(run_dir / METRICS_FILE, metrics)
    console.print(f"exact-match accuracy {metrics['accuracy']:.3f}, judged accuracy {judged.accuracy:.3f} "
                  f"({judged.n_errors} judge errors) -> {run_dir / METRICS_FILE}")
