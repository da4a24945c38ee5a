"""Observation → HF / OpenAI chat messages, and the stop-string helpers (pure Python, no torch)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from mmsearch_gym.agents.messages import (
    assistant_turns,
    image_data_url,
    to_hf_messages,
    to_openai_messages,
)
from mmsearch_gym.agents.stopping import (
    ACTION_STOP_STRINGS,
    StopChecker,
    check_stop_strings,
    find_stop,
    restore_stop,
    truncate_at_stop,
)
from mmsearch_gym.data.sample import VQASample
from mmsearch_gym.envs.image_search_vqa import ImageSearchVQAEnv
from mmsearch_gym.search.static import StaticSearchBackend
from mmsearch_gym.search.types import EncodedImage, SearchItem, SearchResults


def _pixels(seed: int, height: int = 12, width: int = 10) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def searched_obs() -> dict:
    """A real env observation after an image search: question image + 2 thumbnails."""
    sample = VQASample(id="s", image=_pixels(0, 16, 20), question="Who?", answers=("A",))
    thumbnails = SearchResults("image", tuple(SearchItem(title=f"t{i}", url=f"http://e.test/{i}",
                                                         thumbnail=EncodedImage.from_array(_pixels(i + 1)))
                                              for i in range(2)))
    env = ImageSearchVQAEnv(dataset=[sample], search=StaticSearchBackend(default_image=thumbnails))
    env.reset(options={"index": 0})
    obs, *_ = env.step("<reason>r</reason><search><img></search>")
    return obs


def test_hf_messages_keep_order_and_pair_images(searched_obs: dict) -> None:
    messages, images = to_hf_messages(searched_obs)
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    image_parts = [p for m in messages for p in m["content"] if p["type"] == "image"]
    assert image_parts == [{"type": "image"}] * 3 and len(images) == 3
    for image, pixels in zip(images, searched_obs["images"]):
        assert isinstance(image, Image.Image) and image.mode == "RGB"
        assert np.array_equal(np.asarray(image), pixels)
    # text is carried over unchanged
    originals = [p["text"] for m in searched_obs["messages"] for p in m["content"] if p["type"] == "text"]
    assert [p["text"] for m in messages for p in m["content"] if p["type"] == "text"] == originals
    assert assistant_turns(searched_obs) == 1


def test_hf_images_follow_part_order_not_index_order() -> None:
    obs = {"images": (_pixels(1), _pixels(2)), "messages": (
        {"role": "user", "content": [{"type": "image", "index": 1}, {"type": "text", "text": "a"},
                                     {"type": "image", "index": 0}, {"type": "image", "index": 1}]},)}
    _, images = to_hf_messages(obs)
    assert [np.array_equal(np.asarray(i), obs["images"][k]) for i, k in zip(images, (1, 0, 1))] == [True] * 3
    assert images[0] is images[2]  # converted once


def test_openai_messages_data_urls(searched_obs: dict) -> None:
    messages = to_openai_messages(searched_obs)
    assert messages[1] == {"role": "assistant", "content": "<reason>r</reason><search><img></search>"}
    urls = [p["image_url"]["url"] for m in messages if isinstance(m["content"], list)
            for p in m["content"] if p["type"] == "image_url"]
    assert len(urls) == 3
    for url, pixels in zip(urls, searched_obs["images"]):
        head, data = url.split(",", 1)
        assert head == "data:image/png;base64"
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(base64.b64decode(data)))), pixels)
    assert messages[0]["content"][0]["type"] == "image_url" and messages[0]["content"][1]["type"] == "text"
    jpeg = to_openai_messages(searched_obs, image_format="jpeg")
    assert jpeg[0]["content"][0]["image_url"]["url"].startswith("data:image/jpeg;base64,")


def test_string_content_and_pil_images() -> None:
    obs = {"images": [Image.fromarray(_pixels(3))], "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "image", "index": 0}, {"type": "text", "text": "q"}]}]}
    messages, images = to_hf_messages(obs)
    assert messages[0] == {"role": "system", "content": [{"type": "text", "text": "Be brief."}]}
    assert len(images) == 1
    assert to_openai_messages(obs)[0] == {"role": "system", "content": [{"type": "text", "text": "Be brief."}]}


@pytest.mark.parametrize(("obs", "match"), [
    ({"messages": ()}, "'images' and 'messages'"),
    ({"images": (), "messages": ({"role": "robot", "content": "x"},)}, "role 'robot'"),
    ({"images": (), "messages": ({"role": "user", "content": [{"type": "image", "index": 0}]},)},
     "index 0, but the observation has 0 image"),
    ({"images": (_pixels(0),), "messages": ({"role": "user", "content": [{"type": "image", "index": True}]},)},
     "index True"),
    ({"images": (), "messages": ({"role": "user", "content": [{"type": "audio"}]},)}, "unsupported part"),
    ({"images": (np.zeros((4, 4), dtype=np.uint8),),
      "messages": ({"role": "user", "content": [{"type": "image", "index": 0}]},)}, "RGB uint8"),
    ({"images": (), "messages": ({"role": "user", "content": 5},)}, "string or a list of parts"),
])
def test_bad_observations_are_named(obs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        to_hf_messages(obs)
    with pytest.raises(ValueError, match=match):
        to_openai_messages(obs)


def test_image_data_url_rejects_unknown_format() -> None:
    with pytest.raises(ValueError, match="image_format must be one of"):
        image_data_url(_pixels(0), "BMP")


# ------------------------------------------------------------------------------------- stopping

def test_truncate_at_first_stop() -> None:
    assert ACTION_STOP_STRINGS == ("</answer>", "</search>", "</text_search>")
    assert truncate_at_stop("<answer>a</answer>\n\nmore</search>") == "<answer>a</answer>"
    assert truncate_at_stop("<search><img></search> then <answer>x</answer>") == "<search><img></search>"
    assert truncate_at_stop("no tag here") == "no tag here"
    assert find_stop("x</text_search>y", ACTION_STOP_STRINGS) == (len("x</text_search>"), "</text_search>")


def test_restore_stop() -> None:
    assert restore_stop("<reason>r</reason><answer>Paris") == "<reason>r</reason><answer>Paris</answer>"
    assert restore_stop("<search><img>") == "<search><img></search>"
    # the last unclosed opener decides
    assert restore_stop("<reason>an <answer> maybe</reason><text_search>q") == \
        "<reason>an <answer> maybe</reason><text_search>q</text_search>"
    assert restore_stop("<text_search>q", stop_reason="</text_search>") == "<text_search>q</text_search>"
    assert restore_stop("ended by eos") == "ended by eos"
    assert restore_stop("<answer>a</answer>") == "<answer>a</answer>"  # server kept the stop string
    assert restore_stop("<answer>a", stop=("</search>",)) == "<answer>a"  # only tags we stop at


def test_stop_checker_and_validation() -> None:
    checker = StopChecker()
    assert checker.hit("...</search>") and not checker.hit("</sear")
    assert checker.tail_tokens == len("</text_search>") + 2
    assert check_stop_strings(None) == ()
    with pytest.raises(TypeError, match="single string"):
        check_stop_strings("</answer>")
    with pytest.raises(ValueError, match="non-empty str"):
        check_stop_strings(["</answer>", ""])
