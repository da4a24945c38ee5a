"""Rendering search results into the `<information>` block the model reads (MMSearch-R1's layout).

The output is a list of segments, text or thumbnail, in reading order; the environment turns each
thumbnail into an image part of the chat message (and an entry of `obs["images"]`), so the model
sees `1. image: <the picture>\\ntitle: …` exactly where MMSearch-R1 put an `<image>` token.
"""

from __future__ import annotations

from typing import Protocol, Union

from mmsearch_gym.search.types import EncodedImage, SearchResults

Segment = Union[str, EncodedImage]
MAX_ERROR_CHARS = 300


class ResultTemplates(Protocol):
    """The templates rendering needs (read-only, so a frozen `PromptSet` satisfies it)."""

    @property
    def image_results_header(self) -> str: ...
    @property
    def text_results_header(self) -> str: ...
    @property
    def no_results(self) -> str: ...
    @property
    def tool_error(self) -> str: ...


def _merge(segments: list[Segment]) -> list[Segment]:
    """Join adjacent text segments so a message never holds two text parts in a row."""
    merged: list[Segment] = []
    for segment in segments:
        if isinstance(segment, str) and merged and isinstance(merged[-1], str):
            merged[-1] = merged[-1] + segment
        elif not (isinstance(segment, str) and not segment):
            merged.append(segment)
    return merged


def render_results(results: SearchResults, templates: ResultTemplates, query: str = "") -> list[Segment]:
    """Segments of the `<information>` content for one search call."""
    if results.error is not None:
        error = " ".join(results.error.split())[:MAX_ERROR_CHARS]
        return [templates.tool_error.format(kind=results.kind, error=error)]
    if results.kind == "image":
        segments: list[Segment] = [templates.image_results_header]
        if not results.items:
            segments.append(templates.no_results)
        for index, item in enumerate(results.items, start=1):
            segments.append(f"{index}. image: ")
            segments.append(item.thumbnail if item.thumbnail is not None else "(no image)")
            segments.append(f"\ntitle: {item.title}\n")
        return _merge(segments)
    segments = [templates.text_results_header.format(query=query)]
    if not results.items:
        segments.append(templates.no_results)
    for index, item in enumerate(results.items, start=1):
        segments.append(f"{index}. ({item.url}) {item.snippet}\n")
    return _merge(segments)
