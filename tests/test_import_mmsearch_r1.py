"""MMSearch-R1's released image-search pickle -> verified bundle -> replay through the env.

The pickles are built with Pillow's own pickling (protocols 2-5) and a simulated old-Pillow layout;
hostile and damaged pickles must be refused with a clear error and nothing written."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, JpegImagePlugin

pytest.importorskip("pyarrow")

from fvqa_fixtures import encoded, noise, old_pillow_dumps, opened, write_fvqa_parquet  # noqa: E402
from loopback import LoopbackServer, Reply  # noqa: E402

import mmsearch_gym  # noqa: E402,F401  (registers the env)
from mmsearch_gym.agents.turns import image_search_turn  # noqa: E402
from mmsearch_gym.cache import verify_bundle  # noqa: E402
from mmsearch_gym.cache.importers import (  # noqa: E402
    BACKEND_ID,
    MalformedPickle,
    PickleLimits,
    PickleRefused,
    UnsafePickle,
    import_mmsearch_r1,
    question_images_by_data_id,
    safe_loads,
)
from mmsearch_gym.cache.importers.mmsearch_r1 import REPORT_SUFFIX  # noqa: E402
from mmsearch_gym.data.loaders import fvqa  # noqa: E402

TITLES, IMAGES = "tool_returned_web_title_list", "tool_returned_images_urls"


def _rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


@pytest.fixture()
def release(tmp_path: Path) -> dict:
    """A parquet of 3 questions and the pickled search results of 3 data_ids (one not in the parquet)."""
    parquet = write_fvqa_parquet(tmp_path / "fvqa_test.parquet", [
        {"data_id": "fvqa_test_0", "question": "Which bridge is this?", "answer": "Velmora Bridge",
         "image": encoded(noise(10), "PNG")},
        {"data_id": "fvqa_test_1", "question": "Who built this tower?", "answer": "Ardent Guild",
         "image": encoded(noise(11), "JPEG", quality=90)},
        {"data_id": "fvqa_test_2", "question": "What is this?", "answer": "nothing",
         "image": encoded(noise(12), "PNG")},
    ])
    jpeg = opened(encoded(noise(20, 16, 20), "JPEG", quality=85))
    png = opened(encoded(noise(21, 12, 12), "PNG"))
    palette = opened(encoded(noise(22, 10, 14), "PNG"))  # saved as RGB then quantised below
    buffer = io.BytesIO()
    Image.fromarray(noise(22, 10, 14)).quantize(16).save(buffer, "PNG")
    palette = opened(buffer.getvalue())
    old_jpeg = opened(encoded(noise(23, 18, 18), "JPEG"))
    data = {
        "fvqa_test_0": {TITLES: ["Velmora Bridge - Encyclopedia", "Velmora Bridge at night", "A river crossing"],
                        IMAGES: [jpeg, png, "https://thumbs.example.org/1.jpg"],
                        "search_query": "image", "rank": [1, 2, 3]},
        "fvqa_test_1": {TITLES: ["Ardent Tower", "Old tower photo"], IMAGES: [palette, "https://thumbs.example.org/2.jpg"]},
        "fvqa_train_99": {TITLES: ["Elsewhere"], IMAGES: ["https://thumbs.example.org/3.jpg"]},
    }
    return {"parquet": parquet, "data": data, "images": {"jpeg": jpeg, "png": png, "palette": palette,
                                                         "old_jpeg": old_jpeg}}


def _samples(parquet: Path) -> tuple:
    return fvqa.load(parquet)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_import_then_replay_shows_titles_in_order_and_pixel_equal_thumbnails(
        tmp_path: Path, release: dict, protocol: int) -> None:
    data = release["data"]
    data["fvqa_test_1"][IMAGES][1] = release["images"]["old_jpeg"]  # one old-Pillow JPEG in the mix
    pkl = tmp_path / "fvqa_test_image_search_results_cache.pkl"
    pkl.write_bytes(old_pillow_dumps(data, protocol=protocol))
    with pytest.raises(ValueError):  # the known pain: a new Pillow cannot unpickle the old layout
        pickle.loads(pkl.read_bytes())
    samples = _samples(release["parquet"])
    bundle = tmp_path / "fvqa_test.zip"
    report = import_mmsearch_r1(pkl, question_images_by_data_id(samples), bundle)

    assert report.entries == 3 and report.imported == 2
    assert report.missing_data_ids == ["fvqa_train_99"] and report.dataset_without_entry == 1
    assert report.images_embedded == 4 and report.title_only == 1 and report.fetch_failures == 0
    info = verify_bundle(bundle)
    assert report.bundle_sha256 == info.sha256 and info.backend_ids == (BACKEND_ID,)
    sidecar = json.loads((tmp_path / ("fvqa_test.zip" + REPORT_SUFFIX)).read_text())
    assert sidecar["entries"]["fvqa_test_0"]["metadata"] == {"search_query": "image", "rank": [1, 2, 3]}

    env = gym.make("ImageSearchVQA-v0", dataset=samples, search="replay", cache_path=str(bundle))
    expected = {
        "fvqa_test_0": (data["fvqa_test_0"][TITLES], [release["images"]["jpeg"], release["images"]["png"], None]),
        "fvqa_test_1": (data["fvqa_test_1"][TITLES], [release["images"]["palette"], release["images"]["old_jpeg"]]),
    }
    for sample_id, (titles, images) in expected.items():
        env.reset(options={"sample_id": sample_id})
        obs, _, terminated, _, info = env.step(image_search_turn("Identify the image."))
        assert not terminated and info["cache_hits"] == 1
        text = "".join(part["text"] for part in obs["messages"][-1]["content"] if part["type"] == "text")
        positions = [text.index(f"title: {title}\n") for title in titles]
        assert positions == sorted(positions)
        thumbs = [image for image in images if image is not None]
        assert len(obs["images"]) == 1 + len(thumbs)
        for shown, original in zip(obs["images"][1:], thumbs):
            np.testing.assert_array_equal(shown, _rgb(original))
        if None in images:
            assert "3. image: (no image)\ntitle: A river crossing" in text
    env.close()


def test_fetch_thumbnails_once_each_failures_title_only_private_hosts_refused(tmp_path: Path, release: dict) -> None:
    from mmsearch_gym.net.fetch import HttpFetcher, HttpSettings
    from mmsearch_gym.net.retry import RetryPolicy

    thumb = encoded(noise(30, 9, 9), "PNG")
    data = release["data"]
    with LoopbackServer() as server:
        server.route("/ok.png", Reply(200, thumb, "image/png"))
        server.route("/page.html", Reply(200, "<html>not an image</html>", "text/html"))
        data["fvqa_test_0"][IMAGES][2] = server.url("/ok.png")
        data["fvqa_test_1"][IMAGES][1] = server.url("/missing.jpg")  # 404
        data["fvqa_test_2"] = {TITLES: ["Same thumb again", "Html"], IMAGES: [server.url("/ok.png"), server.url("/page.html")]}
        pkl = tmp_path / "cache.pkl"
        pkl.write_bytes(pickle.dumps(data, protocol=4))
        images = question_images_by_data_id(_samples(release["parquet"]))
        fetcher = HttpFetcher(HttpSettings(retry=RetryPolicy(max_attempts=1)))
        report = import_mmsearch_r1(pkl, images, tmp_path / "a.zip", fetch_thumbnails=True, fetcher=fetcher,
                                    allow_private_hosts=True)
        assert server.hits("/ok.png") == 1  # fetched once for two items
        assert (report.images_fetched, report.fetch_failures) == (2, 2)
        refused = import_mmsearch_r1(pkl, images, tmp_path / "b.zip", fetch_thumbnails=True, fetcher=fetcher)
        assert server.hits("/ok.png") == 1  # loopback refused without a request
        assert refused.images_fetched == 0 and refused.fetch_failures == 4
        assert any("not a public address" in failure for failure in refused.failed_urls)

    env = gym.make("ImageSearchVQA-v0", dataset=_samples(release["parquet"]), search="replay",
                   cache_path=str(tmp_path / "a.zip"))
    env.reset(options={"sample_id": "fvqa_test_2"})
    obs, *_ = env.step(image_search_turn("Identify the image."))
    np.testing.assert_array_equal(obs["images"][1], noise(30, 9, 9))
    text = "".join(part["text"] for part in obs["messages"][-1]["content"] if part["type"] == "text")
    assert "2. image: (no image)\ntitle: Html" in text  # never a substitute image
    env.close()


def test_cli_prints_report_and_sha(tmp_path: Path, release: dict) -> None:
    from typer.testing import CliRunner

    from mmsearch_gym.cli import app

    pkl = tmp_path / "cache.pkl"
    pkl.write_bytes(pickle.dumps(release["data"], protocol=5))
    bundle = tmp_path / "out.zip"
    result = CliRunner().invoke(app, ["cache", "import-mmsearch-r1", str(pkl), "--suite",
                                      f"fvqa:{release['parquet']}", "-o", str(bundle)])
    assert result.exit_code == 0, result.output
    assert f"sha256 {verify_bundle(bundle).sha256}" in result.output
    assert "data_ids missing from the dataset: 1 (e.g. fvqa_train_99)" in result.output
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    result = CliRunner().invoke(app, ["cache", "import-mmsearch-r1", str(evil), "--suite",
                                      f"fvqa:{release['parquet']}", "-o", str(tmp_path / "evil.zip")])
    assert result.exit_code == 1 and "os.system" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "evil.zip").exists()


# ------------------------------------------------------------------------ hostile and damaged pickles

class _Reduce:
    def __init__(self, func, args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _jpeg_with_state(state: list) -> bytes:
    class Pickler(pickle.Pickler):
        def reducer_override(self, value):
            if isinstance(value, JpegImagePlugin.JpegImageFile):
                return __import__("copyreg").__newobj__, (JpegImagePlugin.JpegImageFile,), state
            return NotImplemented

    buffer = io.BytesIO()
    Pickler(buffer, protocol=4).dump({"fvqa_test_0": {TITLES: ["t"], IMAGES: [opened(encoded(noise(1), "JPEG"))]}})
    return buffer.getvalue()


def _valid() -> bytes:
    return pickle.dumps({"fvqa_test_0": {TITLES: ["t"], IMAGES: [opened(encoded(noise(1), "JPEG"))]}}, protocol=4)


HOSTILE = {
    "os.system": (lambda: pickle.dumps({"x": _Reduce(os.system, ("echo pwned",))}), UnsafePickle,
                  r"asks for (posix|nt)\.system"),
    "builtins.eval": (lambda: pickle.dumps(_Reduce(eval, ("1+1",)), protocol=2), UnsafePickle, r"builtins\.eval"),
    "subprocess.Popen": (lambda: pickle.dumps(_Reduce(subprocess.Popen, (["true"],))), UnsafePickle,
                         r"subprocess\.Popen"),
    "nested reduce in an image state": (
        lambda: _jpeg_with_state([{"evil": _Reduce(os.system, ("echo pwned",))}, "RGB", (1, 1), None, b"\0\0\0"]),
        UnsafePickle, r"(posix|nt)\.system"),
    "allowed class called with arguments": (
        lambda: pickle.dumps(_Reduce(JpegImagePlugin.JpegImageFile, ("/etc/passwd",))), UnsafePickle,
        r"JpegImageFile with arguments"),
    "truncated": (lambda: _valid()[:-7], MalformedPickle, r"truncated"),
    "declared length beyond the file": (lambda: b"\x80\x04\x8e" + (2**40).to_bytes(8, "little") + b"abc.",
                                        MalformedPickle, r"truncated"),
    "wrong top-level type": (lambda: pickle.dumps([1, 2, 3]), MalformedPickle, r"top-level object is a list"),
    "entry of the wrong shape": (lambda: pickle.dumps({"fvqa_test_0": {TITLES: "one title", IMAGES: []}}),
                                 MalformedPickle, r"'fvqa_test_0'.*expected a list"),
    "oversized image": (lambda: pickle.dumps({"fvqa_test_0": {TITLES: ["t"], IMAGES: [
        opened(encoded(noise(2, 80, 80), "PNG"))]}}), MalformedPickle, r"80x80 pixels exceeds the limit of 5000"),
    "bomb of huge dimensions": (lambda: _jpeg_with_state([{}, "RGB", (100_000, 100_000), None, b"\0" * 30]),
                                MalformedPickle, r"100000x100000 pixels exceeds the limit"),
    "pixel data of the wrong length": (lambda: _jpeg_with_state([{}, "RGB", (4, 4), None, b"\0" * 47]),
                                       MalformedPickle, r"47 bytes of pixel data .* expected 48"),
    "mode outside the allow-list": (lambda: _jpeg_with_state([{}, "BGR;24", (1, 1), None, b"\0\0\0"]),
                                    MalformedPickle, r"mode 'BGR;24'"),
    "codecs.encode misused": (lambda: b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x05\x00\x00\x00rot13\x86R.",
                              UnsafePickle, r"only encode\(str, 'latin1'\)"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_or_damaged_pickle_is_refused_and_nothing_written(tmp_path: Path, release: dict, case: str) -> None:
    make, error, pattern = HOSTILE[case]
    pkl = tmp_path / "bad.pkl"
    pkl.write_bytes(make())
    out = tmp_path / "out" / "bundle.zip"
    out.parent.mkdir()
    images = question_images_by_data_id(_samples(release["parquet"]))
    with pytest.raises(error, match=pattern) as caught:
        import_mmsearch_r1(pkl, images, out, limits=PickleLimits(max_image_pixels=5000))
    assert "bad.pkl" in str(caught.value) and "\n" not in str(caught.value)
    assert list(out.parent.iterdir()) == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(min_value=0, max_value=400), flips=st.lists(
    st.tuples(st.integers(min_value=0, max_value=10_000), st.integers(min_value=0, max_value=255)), max_size=4))
def test_damaged_pickles_only_ever_load_or_raise_pickle_refused(cut: int, flips: list) -> None:
    data = bytearray(_valid())
    for position, value in flips:
        data[position % len(data)] = value
    data = data[:len(data) - cut % len(data)]
    try:
        safe_loads(bytes(data))
    except PickleRefused:
        pass
