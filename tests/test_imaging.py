"""`imaging.load_rgb`: the explicit pixel conversion rule and one-line errors for damaged images."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from mmsearch_gym import imaging
from mmsearch_gym.imaging import MAX_IMAGE_PIXELS, ImageError, load_rgb

SHAPES = hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6)


def encoded(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height RGB pixels, with no pixel data: what a bomb's header
    looks like to the decoder before any pixel is decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


# ------------------------------------------------------------------------------ the array rule


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(st.sampled_from([np.float16, np.float32, np.float64]), SHAPES,
                  elements=st.floats(0.0, 1.0, width=16)))
def test_floats_in_unit_range_are_scaled_and_rounded(array: np.ndarray) -> None:
    pixels = load_rgb(array)
    expected = np.rint(array.astype(np.float64) * 255.0).astype(np.uint8)
    assert pixels.dtype == np.uint8 and pixels.shape == (*array.shape, 3)
    for channel in range(3):
        np.testing.assert_array_equal(pixels[:, :, channel], expected)


def test_float_image_in_unit_range_is_not_black() -> None:
    """Regression: a float image in [0, 1] used to be cast straight to uint8, i.e. black."""
    assert load_rgb(np.full((2, 2, 3), 0.5)).max() == 128
    assert load_rgb(np.ones((2, 2, 3), dtype=np.float32)).min() == 255


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([np.int8, np.int16, np.int32, np.int64, np.uint16, np.uint32, np.uint64]).flatmap(
    lambda dtype: hnp.arrays(dtype, SHAPES, elements=st.integers(0, 255 if np.iinfo(dtype).max >= 255 else 127))))
def test_integers_in_byte_range_are_kept(array: np.ndarray) -> None:
    pixels = load_rgb(array)
    assert pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels[:, :, 0].astype(np.int64), array.astype(np.int64))


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([np.int16, np.int32, np.int64, np.uint16]).flatmap(
    lambda dtype: hnp.arrays(dtype, SHAPES, elements=st.integers(
        max(int(np.iinfo(dtype).min), -1000), min(int(np.iinfo(dtype).max), 1000)))))
def test_integers_outside_byte_range_are_refused_naming_dtype_and_range(array: np.ndarray) -> None:
    low, high = int(array.min()), int(array.max())
    if low >= 0 and high <= 255:
        assert load_rgb(array).dtype == np.uint8
        return
    with pytest.raises(ImageError) as caught:
        load_rgb(array)
    message = str(caught.value)
    assert str(array.dtype) in message and f"[{low}, {high}]" in message and "\n" not in message


def test_int16_300_is_refused_not_wrapped_to_44() -> None:
    """Regression: int16 300 used to become 44 (300 mod 256)."""
    with pytest.raises(ImageError, match=r"dtype int16 has values in \[0, 300\]"):
        load_rgb(np.array([[0, 300]], dtype=np.int16))


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, SHAPES, elements=st.floats(allow_nan=True, allow_infinity=True)))
def test_floats_outside_unit_range_or_nan_are_refused(array: np.ndarray) -> None:
    finite = bool(np.isfinite(array).all())
    if finite and array.min() >= 0.0 and array.max() <= 1.0:
        assert load_rgb(array).dtype == np.uint8
        return
    with pytest.raises(ImageError, match="float64") as caught:
        load_rgb(array)
    assert ("NaN or infinite" in str(caught.value)) != finite


@given(hnp.arrays(np.bool_, SHAPES))
def test_bool_is_0_or_255(array: np.ndarray) -> None:
    pixels = load_rgb(array)
    np.testing.assert_array_equal(pixels[:, :, 1], np.where(array, 255, 0))


@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=5).map(
    lambda shape: (shape[0], shape[1], 3))))
def test_uint8_rgb_is_unchanged(array: np.ndarray) -> None:
    np.testing.assert_array_equal(load_rgb(array), array)


def test_shapes_grayscale_alpha_and_refusals() -> None:
    gray = np.array([[0, 9]], dtype=np.uint8)
    np.testing.assert_array_equal(load_rgb(gray), np.repeat(gray[:, :, None], 3, axis=2))
    np.testing.assert_array_equal(load_rgb(gray[:, :, None]), load_rgb(gray))
    rgba = np.zeros((1, 2, 4), dtype=np.uint8)
    rgba[..., 3] = 7
    rgba[..., 0] = 200
    np.testing.assert_array_equal(load_rgb(rgba), rgba[..., :3])
    with pytest.raises(ImageError, match=r"shape .*got \(2, 2, 2\)"):
        load_rgb(np.zeros((2, 2, 2), dtype=np.uint8))
    with pytest.raises(ImageError, match="no pixels"):
        load_rgb(np.zeros((0, 4, 3), dtype=np.uint8))
    with pytest.raises(ImageError, match="dtype complex128"):
        load_rgb(np.zeros((2, 2, 3), dtype=complex))
    with pytest.raises(ImageError, match="dtype object"):
        load_rgb(np.array([["a"]], dtype=object))
    with pytest.raises(ImageError, match="unsupported image reference of type int"):
        load_rgb(3)  # type: ignore[arg-type]


def test_sixteen_bit_png_is_scaled_not_clipped() -> None:
    """Pillow's own RGB conversion clips 16-bit values to 255 (a mostly white image)."""
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    pixels = load_rgb(encoded(values))
    assert pixels[0, :, 0].tolist() == [0, 1, 128, 255]
    float_image = Image.fromarray(np.array([[0.0, 0.25]], dtype=np.float32))
    assert load_rgb(float_image)[0, :, 0].tolist() == [0, 64]


# ------------------------------------------------------------------------------ damaged files


def test_truncated_and_garbage_bytes_give_one_line_errors(tmp_path: Path) -> None:
    data = encoded(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    for broken, reason in ((data[: len(data) // 2], "truncated"), (b"\x89PNG\r\n\x1a\n" + b"x" * 40, "cannot decode"),
                           (b"", "not a recognised")):
        with pytest.raises(ImageError, match=reason) as caught:
            load_rgb(broken)
        assert "\n" not in str(caught.value) and f"{len(broken)} bytes" in str(caught.value)
        file = tmp_path / "broken.png"
        file.write_bytes(broken)
        with pytest.raises(ImageError, match=r"cannot decode image file '.*broken\.png'"):
            load_rgb(file)
    jpeg = encoded(np.full((32, 32, 3), 90, dtype=np.uint8), "JPEG")
    with pytest.raises(ImageError, match="cannot decode"):
        load_rgb(jpeg[: len(jpeg) // 2])
    lazy = tmp_path / "lazy.png"
    lazy.write_bytes(data[: len(data) // 2])
    with Image.open(lazy) as opened, pytest.raises(ImageError, match="cannot decode PIL image"):
        load_rgb(opened)


@pytest.mark.parametrize("width, height", [
    (10_000, 6_000),    # over our limit, under Pillow's warning threshold
    (10_000, 10_000),   # between Pillow's warning threshold and its error threshold
    (100_000, 100_000),  # over Pillow's error threshold
])
def test_decompression_bombs_are_refused_before_decoding(tmp_path: Path, width: int, height: int) -> None:
    assert width * height > MAX_IMAGE_PIXELS
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(width, height))
    with pytest.raises(ImageError, match=r"bomb\.png.*pixels") as caught:
        load_rgb(bomb)
    assert "\n" not in str(caught.value)
    with pytest.raises(ImageError, match="pixels"):
        load_rgb(bomb.read_bytes())


def test_pixel_limit_is_a_documented_module_constant(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encoded(np.zeros((10, 10, 3), dtype=np.uint8))
    assert load_rgb(data).shape == (10, 10, 3)
    monkeypatch.setattr(imaging, "MAX_IMAGE_PIXELS", 99)
    with pytest.raises(ImageError, match=r"10x10 = 100 pixels, over the limit of 99"):
        load_rgb(data)


def test_module_docstring_examples_hold() -> None:
    import doctest

    result = doctest.testmod(imaging, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 2 and result.failed == 0
