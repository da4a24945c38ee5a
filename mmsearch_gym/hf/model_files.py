"""The local model folder and the fingerprint of its weights.

Why local files only: an evaluation or a training run must not fetch or silently update weights, and
the fingerprint then says exactly which weights produced a run (it goes into the run manifest).
Pure Python (no torch).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

__all__ = ["FULL_HASH_LIMIT_BYTES", "local_model_dir", "sha256_text", "weights_fingerprint"]

_WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf")
FULL_HASH_LIMIT_BYTES = 4 * 2**30
"""Weights up to this size are hashed in full; above it `weights_fingerprint` samples (see there)."""
_EDGE_BYTES = 2**20


def local_model_dir(model_path: str | Path) -> Path:
    """The model directory as a resolved Path; a clear error when it is not a local model folder."""
    if not isinstance(model_path, (str, Path)) or not str(model_path):
        raise ValueError(f"model_path must be a local directory path, got {model_path!r}")
    path = Path(model_path).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"model_path {str(model_path)!r} is not a local directory (models are loaded "
                                "from local files only; download the model first)")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"model_path {str(model_path)!r} has no config.json; is it a model folder?")
    return path.resolve()


def _weight_files(path: Path) -> list[Path]:
    for pattern in _WEIGHT_PATTERNS:
        files = sorted(path.glob(pattern))
        if files:
            return files
    return []


def _sha256_file(path: Path, hasher: Any) -> None:
    with path.open("rb") as handle:
        for block in iter(functools.partial(handle.read, 2**22), b""):
            hasher.update(block)


def weights_fingerprint(model_path: str | Path, full_hash_limit: int = FULL_HASH_LIMIT_BYTES) -> dict[str, Any]:
    """A hash identifying the model's weights, for the run manifest.

    method "sha256": SHA-256 over every weight file (name, then bytes, files in name order); used
    when the files total at most `full_hash_limit` bytes. method "sampled" (bigger models, where
    reading every byte would take minutes): SHA-256 over config.json, then each file's name, size
    and first and last MiB. A fine-tune rewrites every tensor, so the sampled bytes change with
    it; only edits confined to the middle of a file would go unnoticed. Weight files are
    `*.safetensors` (else `*.bin`, `*.pt`, `*.pth`, `*.gguf`) at the top of the folder.
    """
    path = Path(model_path)
    files = _weight_files(path)
    if not files:
        return {"method": "none", "sha256": None, "files": 0, "bytes": 0}
    total = sum(file.stat().st_size for file in files)
    hasher = hashlib.sha256()
    if total <= full_hash_limit:
        method = "sha256"
        for file in files:
            hasher.update(f"{file.name}\0".encode())
            _sha256_file(file, hasher)
    else:
        method = "sampled"
        config = path / "config.json"
        hasher.update(config.read_bytes() if config.is_file() else b"")
        for file in files:
            size = file.stat().st_size
            hasher.update(f"\0{file.name}\0{size}\0".encode())
            with file.open("rb") as handle:
                hasher.update(handle.read(_EDGE_BYTES))
                handle.seek(max(0, size - _EDGE_BYTES))
                hasher.update(handle.read(_EDGE_BYTES))
    return {"method": method, "sha256": hasher.hexdigest(), "files": len(files), "bytes": total}


def sha256_text(text: str | None) -> str | None:
    """SHA-256 of a text (e.g. a chat template) for the run manifest; None stays None."""
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()
