"""The named colours emblems are painted with.

Emblems use only these exact RGB values and no anti-aliasing, so "which colour is the background"
has one answer a pixel count can check. Colours are far apart in RGB and mostly in luminance too
(perceptual hashes see grey levels), and each has the spellings an answer may use.
"""

from __future__ import annotations

from mmsearch_gym.imaging import PALETTE, NamedColour  # the named colours live in the ground layer

__all__ = ["COLOURS", "PALETTE", "NamedColour", "colour"]

COLOURS: dict[str, NamedColour] = {colour.name: colour for colour in PALETTE}


def colour(name: str) -> NamedColour:
    try:
        return COLOURS[name]
    except KeyError:
        raise ValueError(f"unknown palette colour {name!r}; known: {', '.join(COLOURS)}") from None
