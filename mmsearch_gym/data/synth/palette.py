"""The named colours emblems are painted with.

Emblems use only these exact RGB values and no anti-aliasing, so "which colour is the background"
has one answer a pixel count can check. Colours are far apart in RGB and mostly in luminance too
(perceptual hashes see grey levels), and each has the spellings an answer may use.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NamedColour:
    name: str
    rgb: tuple[int, int, int]
    aliases: tuple[str, ...] = ()

    @property
    def luminance(self) -> float:
        """ITU-R 601 luma, the weighting PIL's "L" conversion (and so phash) uses."""
        r, g, b = self.rgb
        return 0.299 * r + 0.587 * g + 0.114 * b


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

COLOURS: dict[str, NamedColour] = {colour.name: colour for colour in PALETTE}


def colour(name: str) -> NamedColour:
    try:
        return COLOURS[name]
    except KeyError:
        raise ValueError(f"unknown palette colour {name!r}; known: {', '.join(COLOURS)}") from None
