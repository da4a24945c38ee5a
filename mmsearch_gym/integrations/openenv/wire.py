"""Lossless JSON encoding of observations and `info` for the wire.

Why a codec of our own on top of OpenEnv's JSON: the remote env must hand research code the *same*
Python values as the local env, so that a run played over the network is byte-identical to a local one.
Plain JSON loses three things our env uses: tuples (observations hold tuples of messages and images),
NumPy arrays (images) and NumPy scalars. Images travel as base64 PNG (lossless, what the issue's clients
expect to read); tuples and arrays are tagged objects; everything else is plain JSON.

>>> import numpy as np
>>> value = {"images": (np.zeros((2, 3, 3), np.uint8),), "turn": 1, "ids": ("a", "b")}
>>> back = decode(encode(value))
>>> back["ids"], back["images"][0].shape, back["images"][0].dtype.name
(('a', 'b'), (2, 3, 3), 'uint8')
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np
from PIL import Image

__all__ = ["encode", "decode", "encode_image", "decode_image", "ImageEncoder", "ImageDecoder", "WireError"]

_TUPLE = "__tuple__"
_IMAGE = "__png__"
_ARRAY = "__ndarray__"
_FLOAT = "__float__"


class WireError(ValueError):
    """A value that cannot cross the wire, or a payload that does not decode: names the value."""


def encode_image(pixels: np.ndarray) -> str:
    """An RGB uint8 image as base64 PNG (lossless; the pixels decode back equal)."""
    _check_rgb(pixels)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG", compress_level=1)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _check_rgb(pixels: np.ndarray) -> None:
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise WireError(f"images on the wire are RGB uint8 (H, W, 3), got {pixels.dtype} {pixels.shape}")


def decode_image(data: str) -> np.ndarray:
    """The inverse of `encode_image`; refuses anything but an RGB PNG."""
    try:
        with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as image:
            if image.format != "PNG" or image.mode != "RGB":
                raise WireError(f"expected an RGB PNG image, got {image.format} {image.mode}")
            pixels = np.array(image)  # a fresh writable array, as the local env's observations are
    except WireError:
        raise
    except Exception as error:  # noqa: BLE001 - any decoding failure is a bad payload
        raise WireError(f"image payload does not decode: {type(error).__name__}: {error}") from None
    return pixels


_K = TypeVar("_K")
_V = TypeVar("_V")


def _remembered(memory: OrderedDict[_K, _V], key: _K, compute: Callable[[], _V], max_entries: int) -> _V:
    """`memory[key]`, computed on a miss; the least recently used entry beyond `max_entries` is dropped."""
    value = memory.get(key)
    if value is None:
        value = memory[key] = compute()
        if len(memory) > max_entries:
            memory.popitem(last=False)
    else:
        memory.move_to_end(key)
    return value


class ImageEncoder:
    """`encode_image` with a small per-session memory of recent images, keyed by their pixels.

    Why: every observation carries the whole dialog's images, so the question image and each search's
    thumbnails are sent again on every later step; PNG encoding was the server's largest cost per
    episode. A repeated image costs a BLAKE2b digest of its pixels (about 1/15 of an encode) instead,
    and the payload is the same string as a fresh encode (PNG encoding is deterministic). Not
    thread-safe: one per session, whose calls openenv-core runs one at a time."""

    def __init__(self, max_entries: int = 64) -> None:
        self.max_entries = max_entries
        self._encoded: OrderedDict[bytes, str] = OrderedDict()

    def __call__(self, pixels: np.ndarray) -> str:
        _check_rgb(pixels)
        pixels = np.ascontiguousarray(pixels)
        digest = hashlib.blake2b(repr(pixels.shape).encode(), digest_size=32)
        digest.update(memoryview(pixels).cast("B"))
        return _remembered(self._encoded, digest.digest(), lambda: encode_image(pixels), self.max_entries)


class ImageDecoder:
    """`decode_image` with a small per-session memory keyed by the payload string itself (exact).

    Why: the client receives the same images again on every step of an episode (see `ImageEncoder`).
    A repeated payload returns a copy of the decoded pixels: a fresh writable array, as a decode gives."""

    def __init__(self, max_entries: int = 64) -> None:
        self.max_entries = max_entries
        self._decoded: OrderedDict[str, np.ndarray] = OrderedDict()

    def __call__(self, data: str) -> np.ndarray:
        return _remembered(self._decoded, data, lambda: decode_image(data), self.max_entries).copy()


def encode(value: Any) -> Any:
    """A JSON-ready form of `value` that `decode` turns back into an equal value of the same types."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {_FLOAT: repr(value)}
    if isinstance(value, np.generic):
        return {_ARRAY: {"dtype": value.dtype.str, "shape": None, "data": [value.item()]}}
    if isinstance(value, np.ndarray):
        if value.dtype == np.uint8 and value.ndim == 3 and value.shape[2] == 3:
            return {_IMAGE: encode_image(value)}
        if value.dtype.kind not in "biuf":
            raise WireError(f"cannot send an array of dtype {value.dtype}")
        return {_ARRAY: {"dtype": value.dtype.str, "shape": list(value.shape), "data": value.ravel().tolist()}}
    if isinstance(value, tuple):
        return {_TUPLE: [encode(item) for item in value]}
    if isinstance(value, list):
        return [encode(item) for item in value]
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise WireError(f"dict keys on the wire are strings, got {key!r}")
            out[key] = encode(item)
        return out
    raise WireError(f"cannot send a value of type {type(value).__name__}")


def decode(value: Any) -> Any:
    """The inverse of `encode`."""
    if isinstance(value, list):
        return [decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (tag, body), = value.items()
        if tag == _TUPLE and isinstance(body, list):
            return tuple(decode(item) for item in body)
        if tag == _IMAGE and isinstance(body, str):
            return decode_image(body)
        if tag == _FLOAT and body in ("nan", "inf", "-inf"):
            return float(body)
        if tag == _ARRAY and isinstance(body, dict):
            return _decode_array(body)
    return {key: decode(item) for key, item in value.items()}


def _decode_array(body: Mapping[str, Any]) -> Any:
    try:
        dtype = np.dtype(body["dtype"])
        if dtype.kind not in "biuf":
            raise WireError(f"array dtype {dtype} is not allowed on the wire")
        data = np.asarray(body["data"], dtype=dtype)
        if body["shape"] is None:
            return data.reshape(())[()]
        return data.reshape(tuple(int(side) for side in body["shape"]))
    except WireError:
        raise
    except Exception as error:  # noqa: BLE001
        raise WireError(f"array payload does not decode: {type(error).__name__}: {error}") from None
