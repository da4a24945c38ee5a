"""FVQA offline, end to end through the CLI: an FVQA-format parquet with data_id, MMSearch-R1's
image-search pickle imported as a bundle, and text search from a local wiki-18 index, played by the
RAG baseline with no network and no API key."""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path

import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("bm25s")

from fvqa_fixtures import encoded, noise, opened, write_fvqa_parquet  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from mmsearch_gym.cache import verify_bundle  # noqa: E402
from mmsearch_gym.cli import app  # noqa: E402

TITLES, IMAGES = "tool_returned_web_title_list", "tool_returned_images_urls"
QUESTIONS = [  # data_id, question, answer, visual-match titles, the wiki passage holding the answer
    ("fvqa_test_17", "In which year was this bridge built?", "1887",
     ["Velmora Bridge - Encyclopedia", "Velmora Bridge at dusk", "Stone bridges of Lisk"],
     ("Velmora Bridge", "The Velmora Bridge crosses the Lisk river. The bridge was built in 1887 by Adela Strom.")),
    ("fvqa_test_42", "Who designed this tower?", "Jorun Maelis",
     ["Ardent Tower | travel guide", "Ardent Tower clock face"],
     ("Ardent Tower", "The Ardent Tower is a clock tower. The tower was designed by Jorun Maelis.")),
    ("fvqa_test_99", "When was this lighthouse first lit?", "1911",
     ["Quorrin Lighthouse", "Quorrin Lighthouse - Wikipedia", "Cape at sunset"],
     ("Quorrin Lighthouse", "Quorrin Lighthouse stands on a granite cape. It was first lit in 1911.")),
]


def _wiki(path: Path, n_random: int = 2000) -> None:
    rng = random.Random(1)
    syllables = ["ka", "lo", "mi", "ren", "tas", "vor", "dun", "sa", "tho", "nex", "pal"]
    rows = [(f"{''.join(rng.choices(syllables, k=3)).title()}",
             " ".join("".join(rng.choices(syllables, k=3)) for _ in range(40)) + ".") for _ in range(n_random)]
    for position, (*_, passage) in enumerate(QUESTIONS):
        rows.insert(500 * position + 3, passage)
    with open(path, "w", encoding="utf-8") as stream:
        for number, (title, text) in enumerate(rows):
            stream.write(json.dumps({"id": str(number), "contents": f'"{title}"\n{text}'}) + "\n")


def test_fvqa_eval_offline_with_imported_bundle_and_wiki_index(tmp_path: Path) -> None:
    parquet = write_fvqa_parquet(tmp_path / "fvqa_test.parquet", [
        {"data_id": data_id, "question": question, "answer": answer, "image": encoded(noise(index), "PNG")}
        for index, (data_id, question, answer, *_) in enumerate(QUESTIONS)])
    release = {data_id: {TITLES: titles, IMAGES: [opened(encoded(noise(100 + i, 12, 16), "JPEG")) for i in range(len(titles))]}
               for data_id, _, _, titles, _ in QUESTIONS}
    pkl = tmp_path / "fvqa_test_image_search_results_cache.pkl"
    pkl.write_bytes(pickle.dumps(release, protocol=4))
    wiki = tmp_path / "wiki-18.jsonl"
    _wiki(wiki)
    runner = CliRunner()

    bundle = tmp_path / "fvqa_test.zip"
    imported = runner.invoke(app, ["cache", "import-mmsearch-r1", str(pkl), "--suite", f"fvqa:{parquet}", "-o", str(bundle)])
    assert imported.exit_code == 0, imported.output
    assert f"sha256 {verify_bundle(bundle).sha256}" in imported.output

    out = tmp_path / "run"
    result = runner.invoke(app, ["eval", "--suite", f"fvqa:{parquet}", "--cache", str(bundle), "--text-corpus", str(wiki),
                                 "--agents", "rag", "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "rag" / "metrics.json").read_text())
    assert metrics["episodes"] == 3 and metrics["accuracy"] == 1.0
    episodes = [json.loads(line) for line in (out / "rag" / "episodes.jsonl").read_text().splitlines() if line.strip()]
    transcript = json.dumps(episodes)
    assert "wiki18://" in transcript and "Velmora Bridge - Encyclopedia" in transcript
    manifest = json.loads((out / "rag" / "manifest.json").read_text())
    assert manifest["cache_bundle_hash"] == verify_bundle(bundle).sha256
    assert "mmsearch-r1-fvqa-release" in manifest["search_backend"] and "wiki18-bm25" in manifest["search_backend"]

    again = runner.invoke(app, ["eval", "--suite", f"fvqa:{parquet}", "--cache", str(bundle), "--text-corpus", str(wiki),
                                "--agents", "rag", "--out", str(tmp_path / "run2")])
    assert again.exit_code == 0, again.output  # the stored index is reused
    assert json.loads((tmp_path / "run2" / "rag" / "metrics.json").read_text())["accuracy"] == 1.0
    missing = runner.invoke(app, ["eval", "--suite", f"fvqa:{parquet}", "--cache", str(bundle), "--text-corpus",
                                  str(tmp_path / "nope.jsonl"), "--agents", "rag", "--out", str(tmp_path / "run3")])
    assert missing.exit_code == 2 and "wiki corpus file not found" in missing.output
    assert missing.exception is None or isinstance(missing.exception, SystemExit)


def test_one_line_python_configuration(tmp_path: Path) -> None:
    """Image search replayed from the imported bundle, text search from the wiki index, in one line."""
    import gymnasium as gym

    from mmsearch_gym.agents.turns import image_search_turn, text_search_turn
    from mmsearch_gym.cache import CachedSearchBackend
    from mmsearch_gym.cache.importers import import_mmsearch_r1, question_images_by_data_id
    from mmsearch_gym.data.loaders import fvqa
    from mmsearch_gym.search import CombinedSearch, WikiTextSearch

    data_id, question, answer, titles, _ = QUESTIONS[0]
    parquet = write_fvqa_parquet(tmp_path / "t.parquet", [
        {"data_id": data_id, "question": question, "answer": answer, "image": encoded(noise(0), "PNG")}])
    pkl = tmp_path / "c.pkl"
    pkl.write_bytes(pickle.dumps({data_id: {TITLES: titles, IMAGES: ["https://example.org/t.jpg"] * 3}}))
    samples = fvqa.load(parquet)
    import_mmsearch_r1(pkl, question_images_by_data_id(samples), tmp_path / "b.zip")
    _wiki(tmp_path / "wiki.jsonl", n_random=200)

    search = CombinedSearch(CachedSearchBackend.replay(tmp_path / "b.zip"), WikiTextSearch(tmp_path / "wiki.jsonl"))

    env = gym.make("ImageSearchVQA-v0", dataset=samples, search=search)
    env.reset(options={"index": 0})
    obs, *_ = env.step(image_search_turn("Identify it."))
    assert "title: Velmora Bridge at dusk" in json.dumps(obs["messages"][-1])
    obs, *_ = env.step(text_search_turn("Look it up.", "Velmora Bridge built"))
    text = json.dumps(obs["messages"][-1])
    assert "wiki18://" in text and "built in 1887" in text
    env.close()
