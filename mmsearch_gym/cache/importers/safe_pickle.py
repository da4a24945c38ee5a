"""Loading a pickle that holds Pillow images without letting it run code.

Why: MMSearch-R1's released FVQA search caches are pickles, and `pickle.load` on a downloaded file
runs whatever the file says. This loader allows exactly the globals that Pillow's own pickling of
JPEG and PNG images emits, and maps each of them to an inert stand-in of ours:

- ``PIL.JpegImagePlugin.JpegImageFile`` and ``PIL.PngImagePlugin.PngImageFile`` become
  `PickledImage` objects that only *receive* the pickled state. Pillow's ``__setstate__`` is never
  called: `PickledImage.to_pil` rebuilds the image with ``Image.frombytes(mode, size, data)`` after
  checking the mode against an allow-list, the pixel count against a limit and the byte count
  against what mode and size require.
- The protocol plumbing older protocols need: ``_codecs.encode`` (protocol 2 writes bytes as
  ``encode(str, 'latin1')``; only that exact call is accepted), ``copyreg._reconstructor`` and
  ``builtins.object`` (protocols 0 and 1 build objects with them; only for our stand-ins).

Every other global (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ...) is refused by
`UnsafePickle` naming it. Before anything is unpickled, the opcode stream is scanned with
`pickletools.genops` (which executes nothing): a truncated stream, a length field larger than the
file, out-of-band buffers and persistent ids are refused there, so the real unpickler never
allocates a declared-but-absent multi-GB object.

Pillow's state is ``[info, mode, size, palette, data]`` up to Pillow 10 and
``[info, mode, size, palette, data, filename, (layers, layer for JPEG)]`` since (a new Pillow
loading an old JPEG pickle fails on exactly that difference); both are read, extra fields ignored.
"""

from __future__ import annotations

import _compat_pickle
import io
import os
import pickle
import pickletools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from mmsearch_gym.checks import require_int


class PickleRefused(ValueError):
    """A pickle the safe loader will not load (base class)."""


class UnsafePickle(PickleRefused):
    """The pickle asks for a global outside the allow-list, or misuses an allowed one."""


class MalformedPickle(PickleRefused):
    """The pickle is truncated, damaged, too large, or holds an image that fails the checks."""


@dataclass(frozen=True)
class PickleLimits:
    """Ceilings for one pickle file and each image in it."""

    max_file_bytes: int = 2 * 2**30
    max_image_pixels: int = 40_000_000

    def __post_init__(self) -> None:
        require_int("max_file_bytes", self.max_file_bytes, low=1)
        require_int("max_image_pixels", self.max_image_pixels, low=1)


DEFAULT_LIMITS = PickleLimits()

# Bytes per pixel of what Image.tobytes() emits for each mode Pillow pickles; "1" packs 8 pixels per byte
# row by row. Anything else (e.g. "I;16B", "BGR;24", "HSV") is refused rather than guessed.
MODE_BYTES_PER_PIXEL = {
    "L": 1, "P": 1, "LA": 2, "PA": 2, "La": 2, "I;16": 2, "RGB": 3, "YCbCr": 3, "LAB": 3,
    "RGBA": 4, "RGBa": 4, "RGBX": 4, "CMYK": 4, "I": 4, "F": 4,
}
PALETTE_MODES = ("L", "LA", "P", "PA")  # the modes Pillow's own __setstate__ applies a palette to


def expected_data_bytes(mode: str, width: int, height: int) -> int:
    if mode == "1":
        return (width + 7) // 8 * height
    return MODE_BYTES_PER_PIXEL[mode] * width * height


class PickledImage:
    """What a pickled Pillow image becomes here: the class name and the state, nothing executed."""

    format = "image"
    qualname = "PIL image"

    def __new__(cls, *args: Any, **kwargs: Any) -> PickledImage:
        if args or kwargs:
            raise UnsafePickle(f"pickle calls {cls.qualname} with arguments {_short(args)}; Pillow's own "
                               "pickling never does, so this is not an image the safe loader rebuilds")
        instance = super().__new__(cls)
        instance.state = None
        return instance

    state: Any

    def __setstate__(self, state: Any) -> None:
        if self.state is not None:
            raise UnsafePickle(f"pickle sets the state of one {self.qualname} twice")
        if state is None:
            raise MalformedPickle(f"pickled {self.qualname} has no state")
        self.state = state

    def to_pil(self, limits: PickleLimits = DEFAULT_LIMITS) -> Image.Image:
        """Rebuild the image from the state's mode, size, palette and raw bytes (checked first)."""
        where = f"pickled {self.qualname}"
        state = self.state
        if not isinstance(state, (list, tuple)) or len(state) < 5:
            raise MalformedPickle(f"{where}: state is {type(state).__name__}"
                                  f"{f' of length {len(state)}' if isinstance(state, (list, tuple)) else ''}"
                                  ", expected [info, mode, size, palette, data, ...]")
        info, mode, size, palette, data = state[:5]
        if not isinstance(info, dict):
            raise MalformedPickle(f"{where}: info is {type(info).__name__}, expected a dict")
        if not isinstance(mode, str) or (mode != "1" and mode not in MODE_BYTES_PER_PIXEL):
            raise MalformedPickle(f"{where}: image mode {_short(mode)} is not one the loader rebuilds "
                                  f"(allowed: 1, {', '.join(sorted(MODE_BYTES_PER_PIXEL))})")
        if (not isinstance(size, (list, tuple)) or len(size) != 2
                or not all(type(side) is int and side >= 1 for side in size)):
            raise MalformedPickle(f"{where}: image size {_short(size)} is not two positive ints")
        width, height = size
        if width * height > limits.max_image_pixels:
            raise MalformedPickle(f"{where}: image of {width}x{height} pixels exceeds the limit of "
                                  f"{limits.max_image_pixels} pixels")
        if not isinstance(data, (bytes, bytearray)):
            raise MalformedPickle(f"{where}: pixel data is {type(data).__name__}, expected bytes")
        expected = expected_data_bytes(mode, width, height)
        if len(data) != expected:
            raise MalformedPickle(f"{where}: {len(data)} bytes of pixel data for a {mode} image of "
                                  f"{width}x{height}, expected {expected}")
        image = Image.frombytes(mode, (width, height), bytes(data))
        if palette is not None and mode in PALETTE_MODES:
            if (not isinstance(palette, (list, tuple)) or not palette or len(palette) % 3 or len(palette) > 768
                    or not all(type(value) is int and 0 <= value <= 255 for value in palette)):
                raise MalformedPickle(f"{where}: palette is not a list of up to 256 RGB triples of 0-255 ints")
            image.putpalette(list(palette))
        return image

    def __repr__(self) -> str:
        return f"<pickled {self.qualname}>"


class PickledJpeg(PickledImage):
    format = "JPEG"
    qualname = "PIL.JpegImagePlugin.JpegImageFile"


class PickledPng(PickledImage):
    format = "PNG"
    qualname = "PIL.PngImagePlugin.PngImageFile"


class _Object:
    """Stands for ``builtins.object`` as the base argument of ``copyreg._reconstructor``."""


def _latin1_encode(text: Any, encoding: Any = None) -> bytes:
    """``_codecs.encode`` as protocol 2 uses it for bytes: ``encode(str, 'latin1')`` and nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickle(f"pickle calls _codecs.encode with {_short((text, encoding))}; only "
                           "encode(str, 'latin1') (how protocol 2 writes bytes) is allowed")
    return text.encode("latin-1")


def _reconstructor(cls: Any, base: Any, state: Any) -> PickledImage:
    """``copyreg._reconstructor`` as protocols 0 and 1 use it, for the image stand-ins only."""
    if not (isinstance(cls, type) and issubclass(cls, PickledImage)) or base is not _Object or state is not None:
        raise UnsafePickle(f"pickle calls copyreg._reconstructor with {_short((cls, base, state))}; only "
                           "the reconstruction of an allowed Pillow image class is allowed")
    return cls()


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("PIL.JpegImagePlugin", "JpegImageFile"): PickledJpeg,
    ("PIL.PngImagePlugin", "PngImageFile"): PickledPng,
    ("_codecs", "encode"): _latin1_encode,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("copy_reg", "_reconstructor"): _reconstructor,  # the Python 2 name protocol < 3 writes
    ("builtins", "object"): _Object,
    ("__builtin__", "object"): _Object,
}

_REFUSED_OPCODES = {
    "PERSID": "persistent ids", "BINPERSID": "persistent ids", "EXT1": "extension codes",
    "EXT2": "extension codes", "EXT4": "extension codes", "NEXT_BUFFER": "out-of-band buffers",
    "READONLY_BUFFER": "out-of-band buffers",
}


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _plain(text: str, limit: int = 200) -> str:
    """`text` with control characters escaped, cut to `limit` characters (names come from the file)."""
    escaped = repr(text)[1:-1]
    return escaped if len(escaped) <= limit else escaped[:limit] + "..."


def _refusal(module: str, name: str) -> UnsafePickle:
    """The error for a global outside the allow-list, naming it as Python 3 spells it (protocols < 3
    write Python 2 names such as ``__builtin__.eval``)."""
    py3 = _compat_pickle.NAME_MAPPING.get((module, name))
    spelled = ".".join(py3) if py3 else f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"
    written = f" (written as {module}.{name})" if spelled != f"{module}.{name}" else ""
    return UnsafePickle(f"pickle asks for {_plain(spelled)}{_plain(written)}, which "
                        "is not allowed: the safe loader rebuilds only PIL JpegImageFile/PngImageFile images and "
                        "plain containers")


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        target = ALLOWED_GLOBALS.get((module, name))
        if target is None:
            raise _refusal(module, name)
        return target


def _prescan(data: bytes, label: str) -> None:
    """Walk the opcodes without executing them: truncation, lengths beyond the end of the file and
    refused opcodes are reported here, before the unpickler allocates anything."""
    try:
        for opcode, _arg, _pos in pickletools.genops(io.BytesIO(data)):
            if opcode.name in _REFUSED_OPCODES:
                raise UnsafePickle(f"{label}: pickle uses {_REFUSED_OPCODES[opcode.name]} "
                                   f"({opcode.name}), which the safe loader does not allow")
            if opcode.name == "GLOBAL" or opcode.name == "INST":
                module, _, name = str(_arg).partition(" ")
                if (module, name) not in ALLOWED_GLOBALS:
                    raise UnsafePickle(f"{label}: {_refusal(module, name)}")
    except PickleRefused:
        raise
    except Exception as error:  # genops raises ValueError for truncation and unknown opcodes
        raise MalformedPickle(f"{label}: not a complete pickle (truncated or damaged: {error})") from None


def safe_loads(data: bytes, *, label: str = "pickle") -> Any:
    """Unpickle `data` with only the allowed globals; images stay `PickledImage` stand-ins."""
    _prescan(data, label)
    try:
        return _RestrictedUnpickler(io.BytesIO(data)).load()
    except UnsafePickle as error:
        raise UnsafePickle(f"{label}: {error}") from None
    except MalformedPickle as error:
        raise MalformedPickle(f"{label}: {error}") from None
    except Exception as error:  # UnpicklingError, EOFError, TypeError, AttributeError, MemoryError, ...
        raise MalformedPickle(f"{label}: cannot be unpickled safely ({type(error).__name__}: {error})") from None


def safe_load(path: str | os.PathLike[str], limits: PickleLimits = DEFAULT_LIMITS) -> Any:
    """`safe_loads` of a file, refused up front when it is larger than `limits.max_file_bytes`."""
    file = Path(path)
    if not file.is_file():
        raise MalformedPickle(f"pickle file {str(file)!r} does not exist or is not a file")
    size = file.stat().st_size
    if size > limits.max_file_bytes:
        raise MalformedPickle(f"pickle file {str(file)!r} is {size} bytes, over the limit of "
                              f"{limits.max_file_bytes}")
    return safe_loads(file.read_bytes(), label=f"pickle file {str(file)!r}")


__all__ = [
    "ALLOWED_GLOBALS", "DEFAULT_LIMITS", "MalformedPickle", "PickleLimits", "PickleRefused", "PickledImage",
    "PickledJpeg", "PickledPng", "UnsafePickle", "safe_load", "safe_loads",
]
