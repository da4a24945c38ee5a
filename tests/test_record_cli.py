"""`mmsearch-gym cache record`: local and SerpApi recording, strict replay of the result, secrets.

Everything runs offline: the local backend retrieves from a synthetic corpus written here, and the
SerpApi backend talks to a scripted loopback server on 127.0.0.1 speaking SerpApi's JSON.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

pytest.importorskip("bm25s")
pytest.importorskip("imagehash")

import mmsearch_gym  # noqa: E402,F401  (registers the environment)
from mmsearch_gym.cache import CachedSearchBackend, SearchCache  # noqa: E402
from mmsearch_gym.cache.keys import normalize_query  # noqa: E402
from mmsearch_gym.cli import app  # noqa: E402
from mmsearch_gym.data import VQASample  # noqa: E402
from mmsearch_gym.data.suite_io import read_suite, write_suite  # noqa: E402
from mmsearch_gym.data.synth import generate_questions, generate_world, write_corpus  # noqa: E402
from mmsearch_gym.search import EncodedImage, LocalCorpusBackend, QueryImage, SearchItem, SearchResults  # noqa: E402

IMAGE_SEARCH = "<reason>x</reason><search><img></search>"
runner = CliRunner()


def flat(text: str) -> str:
    """Command output with rich's line wrapping undone."""
    return " ".join(text.split())


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, flat(result.output)


@pytest.fixture(autouse=True)
def _offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("SERPAPI_API_KEY", raising=False)


# ------------------------------------------------------------------------------- local backend


@pytest.fixture(scope="module")
def world_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("synth-world")
    world = generate_world(3, 12, n_test_entities=12)
    write_suite(generate_questions(world, 10, 1, "test"), root / "suite", name="tiny-synth")
    write_corpus(world, root / "corpus")
    return root / "suite", root / "corpus"


def _image_query(sample: VQASample) -> QueryImage:
    return QueryImage(sample.rgb(), url=sample.image_url)


def test_record_local_then_strict_replay(world_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    suite, corpus = world_dirs
    cache = tmp_path / "cache"
    samples = read_suite(suite)

    code, output = invoke("cache", "record", "--backend", "local", "--corpus", corpus, "--suite", suite,
                          "--out", cache)
    assert code == 0, output
    assert "recorded into" in output
    with SearchCache(cache, create=False) as opened:
        entries = list(opened.entries())
    distinct_images = {_image_query(s).pixels.tobytes() for s in samples}
    assert {e.kind for e in entries} == {"image"} and len(entries) == len(distinct_images)

    # every sample's image search replays, and equals what the live backend returns
    live = LocalCorpusBackend(corpus)
    replay = CachedSearchBackend.replay(cache)
    try:
        assert replay.backend_id == live.backend_id
        for sample in samples:
            recorded = replay.image_search(_image_query(sample), 5)
            assert recorded.source == "cache_hit"
            assert recorded == live.image_search(_image_query(sample), 5), sample.id
        assert replay.stats.misses == 0
    finally:
        replay.close()
    assert any(replay_items for replay_items in (e.results.items for e in entries))  # real matches recorded

    env = gym.make("ImageSearchVQA-v0", dataset=str(suite), search="replay", cache_path=str(cache))
    try:
        for sample in samples:
            env.reset(options={"sample_id": sample.id})
            _, _, terminated, _, info = env.step(IMAGE_SEARCH)
            assert not terminated and info["cache_hits"] == 1 and info["cache_misses"] == 0, sample.id
            assert info["search"]["error"] is None
    finally:
        env.close()

    # resumable: a second run finds everything recorded and calls nothing live
    code, output = invoke("cache", "record", "--backend", "local", "--corpus", corpus, "--suite", suite,
                          "--out", cache)
    assert code == 0, output
    assert "'live_calls': 0" in output and "'stored': 0" in output
    with SearchCache(cache, create=False) as opened:
        assert len(opened) == len(entries)


def test_record_local_with_oracle_agent_then_eval(world_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    suite, corpus = world_dirs
    cache = tmp_path / "cache"
    samples = read_suite(suite)
    plans = [step for s in samples for step in s.meta["plan"]]
    text_queries = {normalize_query(step.split(":", 1)[1]) for step in plans if step.startswith("text_search:")}
    assert text_queries, "the generated suite should need some text searches"

    # image searches only: the oracle's strict-replay evaluation stops at its first text search
    assert invoke("cache", "record", "--backend", "local", "--corpus", corpus, "--suite", suite,
                  "--out", cache)[0] == 0
    code, output = invoke("eval", "--suite", suite, "--agents", "oracle", "--cache", cache, "--out", tmp_path / "r0")
    assert code != 0 and "strict replay" in output and "text search" in output

    code, output = invoke("cache", "record", "--backend", "local", "--corpus", corpus, "--suite", suite,
                          "--out", cache, "--agent", "oracle")
    assert code == 0, output
    with SearchCache(cache, create=False) as opened:
        entries = list(opened.entries())
    assert {normalize_query(e.query) for e in entries if e.kind == "text"} == text_queries
    assert all(e.results.items for e in entries if e.kind == "text")

    run = tmp_path / "run"
    code, output = invoke("eval", "--suite", suite, "--agents", "oracle", "--cache", cache, "--out", run)
    assert code == 0, output
    metrics = json.loads((run / "oracle" / "metrics.json").read_text())
    assert metrics["accuracy"] == 1.0
    assert metrics["episodes"] == len(samples)

    # recording the oracle again is free
    code, output = invoke("cache", "record", "--backend", "local", "--corpus", corpus, "--suite", suite,
                          "--out", cache, "--agent", "oracle")
    assert code == 0 and "'live_calls': 0" in output, output


# ----------------------------------------------------------------------------- SerpApi backend

SECRET = "serp-TEST-SECRET-4b1d9e77c0ffee"
ENTITIES = ("Velmora Guild", "Ostrander Works", "Kelvane Abbey")
FOUNDED = (1887, 1902, 1765)


def emblem(index: int) -> np.ndarray:
    rng = np.random.default_rng(100 + index)
    image = np.zeros((48, 64, 3), np.uint8)
    image[:] = rng.integers(0, 256, 3)
    image[::5] = rng.integers(0, 256, 3)
    image[:, index * 7: index * 7 + 9] = rng.integers(0, 256, 3)
    return image


def thumb_jpeg(index: int, rank: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 16), (40 * index % 256, 60 * rank % 256, 90)).save(buffer, format="JPEG")
    return buffer.getvalue()


def lens_matches(base: str, index: int) -> list[dict]:
    name = ENTITIES[index]
    return [{"position": rank + 1, "title": title, "link": f"https://example.org/{index}/{rank}",
             "thumbnail": f"{base}/thumbs/{index}-{rank}.jpg", "source": "example.org"}
            for rank, title in enumerate((f"{name} - Encyclopedia", f"{name} news", f"Travel diary: {name}"))]


def organic_results(query: str) -> list[dict]:
    index = next((i for i, name in enumerate(ENTITIES) if name.lower() in query.lower()), None)
    if index is None:
        return [{"position": 1, "title": "Unrelated", "link": "https://example.org/unrelated",
                 "snippet": "Nothing to see here."}]
    name = ENTITIES[index]
    return [{"position": 1, "title": f"{name} history", "link": f"https://example.org/{index}/history",
             "snippet": f"The {name} was founded in {FOUNDED[index]}."},
            {"position": 2, "title": f"About the {name}", "link": f"https://example.org/{index}/about",
             "snippet": f"The {name} is an old organisation."}]


def expected_image_results(base: str, index: int) -> SearchResults:
    return SearchResults("image", tuple(
        SearchItem(m["title"], m["link"], "", EncodedImage(thumb_jpeg(index, rank)))
        for rank, m in enumerate(lens_matches(base, index))))


def expected_text_results(query: str) -> SearchResults:
    return SearchResults("text", tuple(SearchItem(r["title"], r["link"], r["snippet"]) for r in organic_results(query)))


@pytest.fixture()
def serp_server() -> Iterator:
    from loopback import LoopbackServer, Reply, Request

    server = LoopbackServer()

    def search(request: Request) -> Reply:
        # SerpApi echoes the request's parameters; this fake echoes the key too, to check it is dropped
        metadata = {"status": "Success", "id": "fake", "json_endpoint": f"{server.base_url}/x?api_key={SECRET}"}
        parameters = {key: values[0] for key, values in request.query.items()}
        if request.param("engine") == "google_lens":
            index = int(urlsplit(request.param("url") or "").path.rsplit("/", 1)[-1].split(".")[0][1:])
            return Reply(body={"search_metadata": metadata, "search_parameters": parameters,
                               "visual_matches": lens_matches(server.base_url, index)})
        if request.param("engine") == "google":
            return Reply(body={"search_metadata": metadata, "search_parameters": parameters,
                               "organic_results": organic_results(request.param("q") or "")})
        return Reply(400, {"error": "unknown engine"})

    def thumbnail(request: Request) -> Reply:
        index, rank = (int(v) for v in request.path.rsplit("/", 1)[-1].split(".")[0].split("-"))
        return Reply(body=thumb_jpeg(index, rank), content_type="image/jpeg")

    server.route("/search", search)
    server.route("/search.json", search)
    for index in range(len(ENTITIES)):
        for rank in range(3):
            server.route(f"/thumbs/{index}-{rank}.jpg", thumbnail)
    with server:
        yield server


def serp_suite(path: Path, base: str) -> tuple[VQASample, ...]:
    samples = tuple(
        VQASample(f"s{i}", emblem(i), "In which year was the organisation with this emblem founded?",
                  (str(FOUNDED[i]),), category="search_required", meta={"image_url": f"{base}/img/s{i}.png"})
        for i in range(len(ENTITIES)))
    write_suite(samples, path, name="serp-loopback")
    return read_suite(path)


def _files_under(*roots: Path) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
        else:
            yield from (p for p in sorted(root.rglob("*")) if p.is_file())


def test_record_serpapi_replays_offline_and_never_stores_the_key(
        serp_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("serpapi")  # the default transport is SerpApi's official client
    pytest.importorskip("httpx")  # thumbnails are fetched with httpx
    monkeypatch.setenv("SERPAPI_API_KEY", SECRET)
    base = serp_server.base_url
    suite_dir, cache, bundle, run = tmp_path / "suite", tmp_path / "cache", tmp_path / "bundle.zip", tmp_path / "run"
    samples = serp_suite(suite_dir, base)
    assert [s.image_url for s in samples] == [f"{base}/img/s{i}.png" for i in range(len(ENTITIES))]

    code, output = invoke("cache", "record", "--backend", "serpapi", "--serpapi-base-url", base,
                          "--suite", suite_dir, "--out", cache, "--agent", "rag")
    assert code == 0, output
    n = len(ENTITIES)
    assert re.search(rf"calls {2 * n} ~\$0\.{2 * n * 15 // 10:02d}", output), output  # $15 per 1000 calls
    searches = [r for r in serp_server.requests if r.path in ("/search", "/search.json")]
    assert sorted(r.param("engine") for r in searches) == ["google"] * n + ["google_lens"] * n
    assert all(r.param("api_key") == SECRET for r in searches)  # the key was used...
    assert SECRET not in output  # ...but never shown
    rag_queries = [r.param("q") for r in searches if r.param("engine") == "google"]
    assert all(any(name in (q or "") for name in ENTITIES) for q in rag_queries)  # entity found via Lens titles

    # resumable: recording again sends nothing
    sent = len(serp_server.requests)
    code, output = invoke("cache", "record", "--backend", "serpapi", "--serpapi-base-url", base,
                          "--suite", suite_dir, "--out", cache, "--agent", "rag")
    assert code == 0 and "'live_calls': 0" in output and len(serp_server.requests) == sent, output
    serp_server.__exit__(None, None, None)  # offline from here on

    with SearchCache(cache, create=False) as opened:
        entries = list(opened.entries())
    assert sorted(e.kind for e in entries) == ["image"] * n + ["text"] * n
    assert len({e.backend_id for e in entries}) == 1 and "serpapi" in entries[0].backend_id
    for entry in entries:
        if entry.kind == "text":
            assert entry.results == expected_text_results(entry.query), entry.query
    replay = CachedSearchBackend.replay(cache)
    try:
        for index, sample in enumerate(samples):
            assert replay.image_search(_image_query(sample), 5) == expected_image_results(base, index)
        for entry in entries:
            if entry.kind == "text":
                assert replay.text_search(entry.query, entry.top_k) == entry.results
            else:
                assert entry.image_url is not None and entry.image_url.startswith(base + "/img/")
    finally:
        replay.close()

    env = gym.make("ImageSearchVQA-v0", dataset=str(suite_dir), search="replay", cache_path=str(cache))
    try:
        for sample in samples:
            obs, _ = env.reset(options={"sample_id": sample.id})
            obs, _, _, _, info = env.step(IMAGE_SEARCH)
            assert info["cache_hits"] == 1 and info["search"]["items"] == 3 and info["search"]["error"] is None
            assert len(obs["images"]) == 4  # the question image and three recorded thumbnails
    finally:
        env.close()

    code, output = invoke("eval", "--suite", suite_dir, "--agents", "rag", "--cache", cache, "--out", run)
    assert code == 0, output
    metrics = json.loads((run / "rag" / "metrics.json").read_text())
    assert metrics["accuracy"] == 1.0  # the extractive reader finds the year in the replayed snippets
    code, output = invoke("cache", "export", cache, "--output", bundle)
    assert code == 0, output

    scanned = 0
    needles = [SECRET.encode(), quote(SECRET).encode(), SECRET.encode("utf-16-le")]
    for path in _files_under(cache, bundle, run):
        data = path.read_bytes()
        assert not any(needle in data for needle in needles), f"API key found in {path}"
        scanned += 1
    with zipfile.ZipFile(bundle) as archive:
        for name in archive.namelist():
            assert SECRET.encode() not in archive.read(name), name
    assert scanned >= 5


# ------------------------------------------------------------------------------------- errors


def test_record_errors_name_the_problem(world_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    suite, corpus = world_dirs
    out = tmp_path / "cache"

    code, output = invoke("cache", "record", "--backend", "bing", "--suite", suite, "--out", out)
    assert code != 0 and "unknown --backend 'bing'" in output
    code, output = invoke("cache", "record", "--backend", "local", "--suite", suite, "--out", out)
    assert code != 0 and "--corpus" in output
    code, output = invoke("cache", "record", "--backend", "serpapi", "--suite", suite, "--out", out)
    assert code != 0 and "SERPAPI_API_KEY" in output
    code, output = invoke("cache", "record", "--backend", "local", "--corpus", tmp_path / "nowhere",
                          "--suite", suite, "--out", out)
    assert code != 0 and "corpus directory not found" in output
    code, output = invoke("cache", "record", "--backend", "local", "--corpus", corpus, "--suite",
                          tmp_path / "no-suite", "--out", out)
    assert code != 0 and "unknown dataset" in output
    code, output = invoke("cache", "record", "--backend", "local", "--corpus", corpus, "--suite", suite,
                          "--out", out, "--agent", "psychic")
    assert code != 0 and "unknown --agent 'psychic'" in output
    assert not out.exists()  # nothing was created for a command that could not run
    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(b"PK")
    code, output = invoke("cache", "record", "--backend", "local", "--corpus", corpus, "--suite", suite,
                          "--out", bundle)
    assert code != 0 and "read-only" in output
