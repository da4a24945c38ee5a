"""InfoSeek sub-2k: MMSearch-R1's 2,000-question InfoSeek subset, from its released verl-style parquet.

The official repository (github.com/EvolvingLMMs-Lab/multimodal-search-r1) ships
`mmsearch_r1_infoseek_sub_2k.parquet` in the same layout as its FVQA files (`prompt`, `images`,
`reward_model{ground_truth, candidate_answers}`, `category`, `data_id`, `data_source`, `extra_info`), so
the FVQA reader parses it (see `fvqa` for the schema and the question extraction). It has a loader
name of its own, `infoseek-sub2k:PATH`, rather than asking users to write `fvqa:PATH`, so that each
sample's `source`, the run manifest and any results table say InfoSeek, not FVQA; `fvqa:PATH` reads
the same file too. This is not the `infoseek` loader, which reads InfoSeek's own JSONL release with
a folder of OVEN images.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mmsearch_gym.data.loaders.building import collect
from mmsearch_gym.data.loaders.fvqa import QuestionExtractor, iter_verl_samples, question_from_text
from mmsearch_gym.data.loaders.rows import PARQUET_BATCH_ROWS
from mmsearch_gym.data.sample import VQASample

NAME = "infoseek-sub2k"


def iter_samples(path: str | Path, *, question_extractor: QuestionExtractor = question_from_text,
                 batch_size: int = PARQUET_BATCH_ROWS) -> Iterator[VQASample]:
    """Stream the subset's samples, one parquet record batch at a time."""
    return iter_verl_samples(path, NAME, question_extractor=question_extractor, batch_size=batch_size)


def load(path: str | Path, *, limit: int | None = None,
         question_extractor: QuestionExtractor = question_from_text) -> tuple[VQASample, ...]:
    """Every sample of the subset as a tuple (images stay encoded bytes); `data_id` is kept in meta."""
    return collect(iter_samples(path, question_extractor=question_extractor), f"{NAME}:{path}", limit)
