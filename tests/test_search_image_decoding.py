"""Search thumbnails and corpus images are decoded through `imaging` (pixel limit, one-line errors).

Regression: `EncodedImage.to_pil`/`.pixels`, SerpApi's `thumbnail_image` and the local index's image
reader called `PIL.Image.open` directly: a decompression-bomb thumbnail was decoded (Pillow's own limit
is higher than ours, and between its thresholds it only warns), and a truncated JPEG thumbnail passed
`thumbnail_image`'s `verify()` and failed later, in the middle of an episode, with a PIL traceback.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from test_imaging import png_header

from mmsearch_gym.imaging import MAX_IMAGE_PIXELS, ImageError, decode_image
from mmsearch_gym.search.local import LocalCorpusBackend
from mmsearch_gym.search.serpapi import thumbnail_image
from mmsearch_gym.search.types import EncodedImage


def _encoded(fmt: str, size: int = 48) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


TRUNCATED_JPEG = _encoded("JPEG")[:300]
TRUNCATED_PNG = _encoded("PNG")[:400]
BOMB = png_header(10_000, 6_000)  # 60 MP: over our limit, under Pillow's (where Pillow decodes silently)


def test_the_bomb_is_over_our_limit_only():
    assert 10_000 * 6_000 > MAX_IMAGE_PIXELS and 10_000 * 6_000 < Image.MAX_IMAGE_PIXELS


@pytest.mark.parametrize("data, message", [
    (TRUNCATED_JPEG, "cannot decode image bytes"), (TRUNCATED_PNG, "cannot decode image bytes"),
    (BOMB, "10000x6000 = 60000000 pixels, over the limit"),
])
def test_encoded_image_decoding_fails_with_one_imaging_line(data, message):
    image = EncodedImage(data)
    for decode in (image.to_pil, lambda: image.pixels):
        with pytest.raises(ImageError, match=message) as caught:
            decode()
        assert "\n" not in str(caught.value)


def test_valid_thumbnails_decode_as_before():
    png = EncodedImage(_encoded("PNG"))
    assert png.to_pil().mode == "RGB" and png.pixels.shape == (48, 48, 3) and not png.pixels.flags.writeable
    gif = _encoded("GIF")
    assert EncodedImage(gif).to_pil().mode == "P"  # to_pil keeps the file's mode
    assert thumbnail_image(png.data) == png  # JPEG/PNG kept byte for byte
    assert thumbnail_image(gif).mime_type == "image/jpeg"  # other formats re-encoded
    assert decode_image(_encoded("JPEG", 600), mode="RGB", draft=(128, 128)).size[0] < 600  # draft downscales


@pytest.mark.parametrize("data", [TRUNCATED_JPEG, TRUNCATED_PNG, BOMB, b"not an image", b""])
def test_serpapi_drops_thumbnails_that_do_not_decode(data):
    assert thumbnail_image(data) is None


def test_a_bomb_in_the_local_corpus_is_one_line_naming_the_page(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "bomb.png").write_bytes(BOMB)
    page = {"url": "https://example.org/a", "title": "A", "text": "alpha", "images": ["images/bomb.png"]}
    (tmp_path / "pages.jsonl").write_text(json.dumps(page) + "\n")
    with pytest.raises(ValueError, match=r"line 1: cannot read image .*bomb\.png.* over the limit") as caught:
        LocalCorpusBackend(tmp_path)
    assert "\n" not in str(caught.value)
