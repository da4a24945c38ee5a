"""Offline stand-ins for FVQA's release: a parquet in its verl-style schema and MMSearch-R1's
image-search cache pickle, built with Pillow's own pickling (shared by the importer and e2e tests)."""

from __future__ import annotations

import copyreg
import io
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, JpegImagePlugin

TEMPLATE = "<image>\nAnswer the question about the image; search if you need to.\n\nQuestion: {question}\n"


def encoded(pixels: np.ndarray, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def opened(data: bytes) -> Image.Image:
    """An image as MMSearch-R1 pickled them: a lazily loaded JpegImageFile/PngImageFile."""
    return Image.open(io.BytesIO(data))


def noise(seed: int, height: int = 24, width: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def write_fvqa_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    """rows: {data_id, question, answer, image (encoded bytes)} -> a parquet in FVQA's schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([
        ("data_source", pa.string()),
        ("prompt", pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))),
        ("images", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
        ("reward_model", pa.struct([("candidate_answers", pa.string()), ("ground_truth", pa.string()),
                                    ("style", pa.string())])),
        ("image_urls", pa.list_(pa.string())), ("data_id", pa.string()), ("category", pa.string()),
    ])
    table = pa.Table.from_pylist([{
        "data_source": "fvqa_test", "data_id": row["data_id"], "category": "search_required",
        "prompt": [{"role": "user", "content": TEMPLATE.format(question=row["question"])}],
        "images": [{"bytes": row["image"], "path": None}],
        "reward_model": {"ground_truth": row["answer"], "candidate_answers": json.dumps([]), "style": "model"},
        "image_urls": [],
    } for row in rows], schema=schema)
    pq.write_table(table, path)
    return path


def old_pillow_dumps(obj: Any, protocol: int = 4) -> bytes:
    """Pickle `obj` with every JPEG image in the layout Pillow <= 10 wrote: state
    [info, mode, size, palette, data] (a new Pillow's JpegImageFile.__setstate__ cannot read it)."""

    class OldPillowPickler(pickle.Pickler):
        def reducer_override(self, value: Any) -> Any:
            if isinstance(value, JpegImagePlugin.JpegImageFile):
                state = [value.info, value.mode, value.size, value.getpalette(), value.tobytes()]
                return copyreg.__newobj__, (JpegImagePlugin.JpegImageFile,), state
            return NotImplemented

    buffer = io.BytesIO()
    OldPillowPickler(buffer, protocol=protocol).dump(obj)
    return buffer.getvalue()
