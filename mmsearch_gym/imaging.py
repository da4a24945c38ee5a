"""Decoding image references (arrays, PIL images, encoded bytes, file paths) into RGB uint8 pixels.

This is the one place pixels are converted (DESIGN §1): `data` (samples) and `search` (static and local
backends) both call `load_rgb`, so it sits below both. The rules are explicit because a silent cast
corrupts data without a trace (`np.asarray(x, dtype=np.uint8)` turns a float image in [0, 1] black and
an int16 300 into 44), and because a damaged or hostile file must fail with one line that names it
(`ImageError`), not with a PIL traceback in the middle of a run.

Array rule (`array_to_rgb`), by dtype:

- uint8: kept as is;
- bool: False -> 0, True -> 255;
- other integer dtypes: kept when every value lies in [0, 255], refused otherwise (we do not guess
  between 12-bit, 16-bit or signed encodings: scale to uint8 yourself);
- floating dtypes: values in [0, 1] are multiplied by 255 and rounded (`numpy.rint`); NaN, infinities
  or any value outside [0, 1] are refused;
- anything else (complex, object, strings): refused.

Shapes: (H, W) and (H, W, 1) are grayscale, repeated to 3 channels; (H, W, 4) drops the alpha channel
(no compositing, as Pillow's RGBA -> RGB does); (H, W, 3) is kept; an image with no pixels is refused.

PIL images (given, or decoded from bytes or a file) use Pillow's conversion to RGB, except the modes
Pillow would clip to 255: 16-bit modes (`I;16*`, e.g. a 16-bit PNG) are scaled by 255/65535 and
rounded, and 32-bit integer or float modes (`I`, `F`) follow the array rule above.

>>> import numpy as np
>>> load_rgb(np.array([[0.0, 0.5, 1.0]])).tolist()
[[[0, 0, 0], [128, 128, 128], [255, 255, 255]]]
>>> try:
...     load_rgb(np.array([[300]], dtype=np.int16))
... except ImageError as error:
...     print(error)
image array of dtype int16 has values in [300, 300]; integer pixels must lie in [0, 255] (convert to uint8 yourself)
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, UnidentifiedImageError

ImageLike = Union[np.ndarray, Image.Image, bytes, str, os.PathLike]

MAX_IMAGE_PIXELS = 50_000_000
"""Largest width x height that `load_rgb` decodes from bytes, a file or a PIL image (about 150 MB once
RGB). The header is checked before any pixel is decoded, because a few-KB PNG can claim 100,000 x
100,000 pixels (a decompression bomb). This limit is ours and independent of Pillow's global
`PIL.Image.MAX_IMAGE_PIXELS`, which is never modified here; Pillow's own DecompressionBombWarning and
DecompressionBombError are turned into `ImageError` too. Raise it by assigning the module attribute."""

_MESSAGE_CHARS = 200


class ImageError(ValueError):
    """An image reference that cannot become RGB uint8 pixels: unreadable or undecodable bytes, an
    oversized image, or an array whose shape, dtype or value range has no conversion rule.

    A ValueError, so callers that already treat bad data as ValueError keep working.
    """


def load_rgb(image: ImageLike) -> np.ndarray:
    """Decode any supported image reference into a C-contiguous RGB uint8 array of shape (H, W, 3).

    Raises ImageError with a one-line message naming the file (or the bytes' size and first bytes).
    """
    if isinstance(image, np.ndarray):
        return array_to_rgb(image)
    if isinstance(image, Image.Image):
        return _guarded(image, "PIL image")
    return _decoded(*_source(image))


def array_to_rgb(array: np.ndarray, what: str = "image array") -> np.ndarray:
    """Pixels of any supported shape and dtype as RGB uint8, by the rule in the module docstring."""
    shape = array.shape
    if array.ndim == 3 and shape[2] == 1:
        array = array[:, :, 0]
    elif array.ndim == 3 and shape[2] == 4:
        array = array[:, :, :3]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ImageError(f"{what} must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageError(f"{what} has no pixels (shape {shape})")
    pixels = to_uint8(array, what)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    return np.ascontiguousarray(pixels)


def to_uint8(array: np.ndarray, what: str = "image array") -> np.ndarray:
    """The values of a non-empty array as uint8 by the dtype rule, or ImageError naming dtype and range."""
    dtype = array.dtype
    if dtype == np.uint8:
        return array
    if dtype.kind == "b":
        return array.astype(np.uint8) * np.uint8(255)
    if dtype.kind in "iu":
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ImageError(f"{what} of dtype {dtype} has values in [{low}, {high}]; integer pixels must lie "
                             "in [0, 255] (convert to uint8 yourself)")
        return array.astype(np.uint8)
    if dtype.kind == "f":
        if not np.isfinite(array).all():
            raise ImageError(f"{what} of dtype {dtype} holds NaN or infinite values")
        low_f, high_f = float(array.min()), float(array.max())
        if low_f < 0.0 or high_f > 1.0:
            raise ImageError(f"{what} of dtype {dtype} has values in [{low_f:g}, {high_f:g}]; float pixels "
                             "must lie in [0, 1] (they are scaled by 255)")
        return np.rint(array.astype(np.float64) * 255.0).astype(np.uint8)
    raise ImageError(f"{what} has dtype {dtype}; pixels must be uint8, bool, integers in [0, 255] "
                     "or floats in [0, 1]")


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 3] + "..."


def decode_image(image: bytes | str | os.PathLike[str], *, mode: str | None = None,
                 draft: tuple[int, int] | None = None) -> Image.Image:
    """Encoded bytes or an image file as a fully decoded PIL image, under `load_rgb`'s checks: the
    size in the header against `MAX_IMAGE_PIXELS` before any pixel is decoded, and every failure
    (truncated data, unknown format, bomb) as one `ImageError` line naming the bytes or the file.
    For callers that need Pillow itself (thumbnails, perceptual hashes, re-encoding) rather than an
    array.

    mode: convert to this mode (e.g. "RGB"; Pillow's own conversion); None keeps the file's mode.
    draft: let a JPEG decoder downscale towards this size while decoding (`Image.draft`), when only
        a small version is needed; other formats ignore it.
    """
    source, what = _source(image)
    with _opened(source, what) as opened:
        if draft is not None:
            opened.draft("RGB", draft)
        opened.load()
        return opened.convert(mode) if mode is not None else opened.copy()


def _source(image: bytes | str | os.PathLike[str]) -> tuple[io.BytesIO | Path, str]:
    if isinstance(image, (bytes, bytearray)):
        data = bytes(image)
        return io.BytesIO(data), f"image bytes ({len(data)} bytes starting {data[:8]!r})"
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise ImageError(f"image file not found: {str(path)!r}")
        return path, f"image file {str(path)!r}"
    raise ImageError(f"unsupported image reference of type {type(image).__name__}")


def _decoded(source: io.BytesIO | Path, what: str) -> np.ndarray:
    """Open `source` with Pillow and convert it, every decoder failure becoming one ImageError line."""
    with _opened(source, what) as opened:
        return _pil_to_rgb(opened, what)


@contextmanager
def _opened(source: io.BytesIO | Path, what: str) -> Iterator[Image.Image]:
    """`source` opened with Pillow, its size checked against the limit; every failure while it is open
    (in the caller's block too: decoding is lazy) becomes one ImageError line."""
    try:
        # Pillow warns (rather than raises) between its limit and twice its limit; make that an error
        # here. catch_warnings is process-global state: a concurrent thread may at worst keep this
        # one filter, which only ever turns this one warning category into an error.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as opened:
                _check_size(opened, what)
                yield opened
    except ImageError:
        raise
    except UnidentifiedImageError as error:
        raise ImageError(f"cannot decode {what}: not a recognised image format") from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageError(f"cannot decode {what}: {_one_line(error)}") from error
    except Exception as error:  # noqa: BLE001 - any decoder failure on untrusted bytes (truncation, bad chunks)
        raise ImageError(f"cannot decode {what}: {type(error).__name__}: {_one_line(error)}") from error


def _guarded(image: Image.Image, what: str) -> np.ndarray:
    """A given PIL image converted; it may be lazily loaded from a damaged file, so guard it too."""
    try:
        return _pil_to_rgb(image, what)
    except ImageError:
        raise
    except Exception as error:  # noqa: BLE001 - lazy decoding of a file behind the PIL object
        raise ImageError(f"cannot decode {what}: {type(error).__name__}: {_one_line(error)}") from error


def _check_size(image: Image.Image, what: str) -> None:
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageError(f"{what} is {width}x{height} = {width * height} pixels, over the limit of "
                         f"{MAX_IMAGE_PIXELS} (imaging.MAX_IMAGE_PIXELS; a decompression bomb or an "
                         "oversized image)")
    if width * height == 0:
        raise ImageError(f"{what} has no pixels ({width}x{height})")


def _pil_to_rgb(image: Image.Image, what: str) -> np.ndarray:
    _check_size(image, what)
    if image.mode.startswith("I;16"):
        scaled = np.rint(np.asarray(image).astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8)
        return array_to_rgb(scaled, what)
    if image.mode in ("I", "F"):
        return array_to_rgb(np.asarray(image), what)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


# ------------------------------------------------------------------------------------ colour names
# Named colours live here, below `data` and `agents`, so the synthetic suites can paint with them and a
# pixel-reading baseline can name them without either importing the other.


class NamedColour:
    """A colour name, its exact RGB value and the other spellings an answer may use."""

    __slots__ = ("name", "rgb", "aliases")

    def __init__(self, name: str, rgb: tuple[int, int, int], aliases: tuple[str, ...] = ()) -> None:
        self.name, self.rgb, self.aliases = name, rgb, aliases

    @property
    def luminance(self) -> float:
        """ITU-R 601 luma, the weighting PIL's "L" conversion (and so phash) uses."""
        r, g, b = self.rgb
        return 0.299 * r + 0.587 * g + 0.114 * b

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NamedColour) and (self.name, self.rgb, self.aliases) == (
            other.name, other.rgb, other.aliases)

    def __hash__(self) -> int:
        return hash((self.name, self.rgb, self.aliases))

    def __repr__(self) -> str:
        return f"NamedColour({self.name!r}, {self.rgb}, {self.aliases})"


PALETTE: tuple[NamedColour, ...] = (
    NamedColour("red", (205, 30, 40), ("scarlet",)),
    NamedColour("orange", (245, 135, 20)),
    NamedColour("yellow", (250, 215, 40)),
    NamedColour("green", (40, 155, 60)),
    NamedColour("teal", (20, 128, 128), ("blue-green",)),
    NamedColour("blue", (45, 95, 215)),
    NamedColour("navy", (18, 28, 95), ("navy blue", "dark blue")),
    NamedColour("purple", (125, 50, 165), ("violet",)),
    NamedColour("pink", (245, 140, 185)),
    NamedColour("brown", (115, 68, 28)),
    NamedColour("black", (15, 15, 15)),
    NamedColour("white", (248, 248, 248)),
    NamedColour("grey", (135, 135, 135), ("gray",)),
)
"""Colours far apart in RGB and mostly in luminance too (perceptual hashes see grey levels)."""

NAMED_COLOURS: dict[str, tuple[int, int, int]] = {colour.name: colour.rgb for colour in PALETTE}


def dominant_colour_name(pixels: np.ndarray, palette: dict[str, tuple[int, int, int]] | None = None) -> str:
    """The palette name that the most pixels are closest to (RGB distance; a 4096-pixel subsample).

    >>> dominant_colour_name(np.full((8, 8, 3), (40, 90, 210), np.uint8))
    'blue'
    """
    palette = NAMED_COLOURS if palette is None else palette
    names = list(palette)
    colours = np.array([palette[name] for name in names], dtype=np.int32)
    flat = pixels.reshape(-1, 3).astype(np.int32)[:: max(1, pixels.shape[0] * pixels.shape[1] // 4096)]
    nearest = np.argmin(((flat[:, None, :] - colours[None, :, :]) ** 2).sum(axis=2), axis=1)
    counts = np.bincount(nearest, minlength=len(names))
    return names[int(np.argmax(counts))]
