"""Image cells: HF image structs, raw bytes, base64 text and file paths, resolved without decoding.

Images stay encoded bytes or file paths (decoded on use by `VQASample.rgb`), so a loader only checks
that bytes look like an encoded image (magic number) and that a path exists; nothing is downloaded
(DESIGN §7).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mmsearch_gym.data.loaders.errors import RowContext

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".JPEG", ".JPG", ".png", ".PNG", ".webp", ".gif", ".bmp")
"""Tried in order when a dataset names an image by id only (InfoSeek's `image_id`)."""

_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def check_image_bytes(context: RowContext, column: str, data: bytes) -> bytes:
    """Reject bytes that are not an encoded image, by magic number only (decoding happens on use)."""
    head = bytes(data[:16])
    if head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return bytes(data)
    raise context.error(column, "is not an encoded image (JPEG/PNG/GIF/WebP/BMP/TIFF)", data)


def resolve_image_path(context: RowContext, column: str, value: str, base_dirs: Iterable[Path]) -> Path:
    """An image path as given (absolute) or relative to the first of `base_dirs` that holds it."""
    candidate = Path(value).expanduser()
    tried: list[Path] = []
    if candidate.is_absolute():
        tried.append(candidate)
    else:
        tried.extend(base / candidate for base in base_dirs)
    for option in tried:
        if option.is_file():
            return option
    raise context.error(column, f"image file not found (looked for {', '.join(map(str, tried))})", value)


def image_from_struct(context: RowContext, column: str, value: Any, base_dirs: Iterable[Path]
                      ) -> tuple[bytes | Path, str | None]:
    """An HF `Image` struct `{bytes, path}` (or raw bytes) as (bytes or file path, original path).

    Bytes win over the path: in HF parquet the path is usually just the original file name.
    """
    if isinstance(value, (bytes, bytearray)):
        return check_image_bytes(context, column, bytes(value)), None
    if not isinstance(value, Mapping):
        raise context.error(column, f"expected an image struct {{bytes, path}}, got {type(value).__name__}",
                            value)
    data, path = value.get("bytes"), value.get("path")
    if data:
        if isinstance(data, str):  # a JSON release may carry the struct's bytes as base64 text
            data = decode_base64(context, f"{column}.bytes", data)
        return check_image_bytes(context, f"{column}.bytes", data), path if isinstance(path, str) else None
    if isinstance(path, str) and path:
        return resolve_image_path(context, f"{column}.path", path, base_dirs), path
    raise context.error(column, "image struct has neither bytes nor a path", value)


def decode_base64(context: RowContext, column: str, text: str) -> bytes:
    """Bytes of base64 text, with or without a `data:image/...;base64,` prefix."""
    payload = text.split(",", 1)[1] if text.startswith("data:") and "," in text else text
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as error:
        raise context.error(column, f"not valid base64 ({error})", text) from error


def looks_like_base64_image(text: str) -> bool:
    """True for a data URL or a long run of base64 characters (not a file name or a URL)."""
    if text.startswith("data:image/"):
        return True
    if len(text) < 64 or "." in text[-8:]:  # short strings and `name.jpg` are paths
        return False
    head = "".join(text[:256].split())
    return all(c.isascii() and (c.isalnum() or c in "+/=") for c in head)


def image_from_text(context: RowContext, column: str, text: str, base_dirs: Iterable[Path]
                    ) -> tuple[bytes | Path, str | None]:
    """A string image cell: a data URL / base64 text (-> bytes) or a file path (-> Path).

    Returns (image, url): an http(s) URL cannot be used because nothing is downloaded at run time
    (DESIGN §7); it is an error that says to download the images and give their folder.
    """
    text = text.strip()
    if text.startswith(("http://", "https://")):
        raise context.error(column, "is a URL; loaders never download (DESIGN §7): download the images "
                                    "and pass image_dir= the folder holding them", text)
    if looks_like_base64_image(text):
        return check_image_bytes(context, column, decode_base64(context, column, text)), None
    return resolve_image_path(context, column, text, base_dirs), None


def find_image_by_id(image_dir: Path, image_id: str, extensions: Sequence[str] = IMAGE_EXTENSIONS
                     ) -> Path | None:
    """`<image_dir>/<image_id><ext>` for the first extension that exists (or the id as a file name)."""
    for extension in ("", *extensions):
        candidate = image_dir / f"{image_id}{extension}"
        if candidate.is_file():
            return candidate
    return None
