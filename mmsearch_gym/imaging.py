"""Decoding image references (arrays, PIL images, encoded bytes, file paths) into RGB pixels.

Shared by `data` (samples) and `search` (static and local backends), so it sits below both.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image

ImageLike = Union[np.ndarray, Image.Image, bytes, str, os.PathLike]


def load_rgb(image: ImageLike) -> np.ndarray:
    """Decode any supported image reference into an RGB uint8 array of shape (H, W, 3)."""
    if isinstance(image, np.ndarray):
        array = image
        if array.ndim == 2:
            array = np.repeat(array[:, :, None], 3, axis=2)
        if array.ndim == 3 and array.shape[2] == 4:
            array = array[:, :, :3]
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"image array must have shape (H, W, 3), got {array.shape}")
        return np.ascontiguousarray(array, dtype=np.uint8)
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    if isinstance(image, (bytes, bytearray)):
        with Image.open(io.BytesIO(image)) as opened:
            return np.asarray(opened.convert("RGB"), dtype=np.uint8)
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise ValueError(f"image file not found: {str(path)!r}")
        with Image.open(path) as opened:
            return np.asarray(opened.convert("RGB"), dtype=np.uint8)
    raise ValueError(f"unsupported image reference of type {type(image).__name__}")
