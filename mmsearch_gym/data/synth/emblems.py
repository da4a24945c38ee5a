"""Emblems: 128x128 RGB images of flat shapes in named colours, with no text.

An emblem is the question image and (as resized, cropped, re-encoded copies) the image on its
entity's web pages, so the local image search can find the pages from the pixels. Its design is
kept as data (`EmblemDesign`) so pixel-level questions (background colour, number of marks, shape
of the figure) have answers known by construction, and the rendered pixels are checked against
them: the background covers more than `MIN_BACKGROUND` of the pixels in one exact colour.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from mmsearch_gym.data.synth.palette import PALETTE, colour

SIZE = 128
MIN_BACKGROUND = 0.55
FIGURE_SHAPES = ("circle", "triangle", "square", "star", "diamond", "hexagon")
MARK_SHAPES = ("circle", "triangle", "square", "star")
# Decorations are stripes and borders only (no free-standing rectangles), so "the largest figure"
# unambiguously means the figure once stripes and borders are set aside.
PATTERNS = ("none", "band_h", "band_v", "band_d", "stripes_h", "stripes_v", "frame")
MAX_MARKS = 5
# How far each shape reaches from its centre, in radii (a square's corners stick out past `radius`).
_REACH = {"circle": 1.0, "triangle": 1.0, "square": 1.21, "star": 1.0, "diamond": 1.0, "hexagon": 1.0}


@dataclass(frozen=True)
class EmblemDesign:
    """Everything needed to redraw an emblem, and the ground truth of its pixel questions."""

    background: str
    pattern: str
    pattern_colour: str
    pattern_geometry: tuple[int, ...]
    figure: str
    figure_colour: str
    figure_center: tuple[int, int]
    figure_radius: int
    figure_rotation: int
    marks: str
    mark_colour: str
    mark_radius: int
    mark_centers: tuple[tuple[int, int], ...]

    @property
    def mark_count(self) -> int:
        return len(self.mark_centers)


def _regular_polygon(cx: float, cy: float, radius: float, sides: int, rotation: float,
                     inner: float | None = None) -> list[tuple[float, float]]:
    """Vertices of a regular polygon (or a star when `inner` gives the inner radius ratio)."""
    points = []
    steps = sides * 2 if inner is not None else sides
    for i in range(steps):
        r = radius if inner is None or i % 2 == 0 else radius * inner
        angle = math.radians(rotation) - math.pi / 2 + 2 * math.pi * i / steps
        points.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
    return points


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, center: tuple[int, int], radius: int,
               rotation: int, fill: tuple[int, int, int]) -> None:
    """Draw one filled shape without anti-aliasing (so every pixel is an exact palette colour)."""
    cx, cy = center
    if shape == "circle":
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=fill)
    elif shape == "square":
        half = radius * 0.85
        pts = [(-half, -half), (half, -half), (half, half), (-half, half)]
        a = math.radians(rotation)
        draw.polygon([(cx + x * math.cos(a) - y * math.sin(a), cy + x * math.sin(a) + y * math.cos(a))
                      for x, y in pts], fill=fill)
    elif shape == "diamond":
        draw.polygon([(cx, cy - radius), (cx + radius * 0.62, cy), (cx, cy + radius),
                      (cx - radius * 0.62, cy)], fill=fill)
    elif shape == "triangle":
        draw.polygon(_regular_polygon(cx, cy, radius, 3, rotation), fill=fill)
    elif shape == "hexagon":
        draw.polygon(_regular_polygon(cx, cy, radius, 6, rotation), fill=fill)
    elif shape == "star":
        draw.polygon(_regular_polygon(cx, cy, radius, 5, rotation, inner=0.45), fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(FIGURE_SHAPES)}")


def _distinct_colours(rng: random.Random) -> tuple[str, str, str, str]:
    """Background, pattern, figure and mark colours: all different; figure and marks stand out
    from the background in grey level, which is what makes emblems differ to a perceptual hash."""
    while True:
        names = rng.sample([c.name for c in PALETTE], 4)
        bg, pattern, figure, marks = (colour(n) for n in names)
        if abs(figure.luminance - bg.luminance) >= 45 and abs(marks.luminance - bg.luminance) >= 35 \
                and abs(marks.luminance - pattern.luminance) >= 20:
            return bg.name, pattern.name, figure.name, marks.name


def sample_design(rng: random.Random) -> EmblemDesign:
    """A random design; callers reject it if the render breaks the background or distinctness rule."""
    bg, pattern_colour, figure_colour, mark_colour = _distinct_colours(rng)
    figure = rng.choice(FIGURE_SHAPES)
    marks = rng.choice([s for s in MARK_SHAPES if s != figure])
    patterns = [p for p in PATTERNS if not (p == "frame" and "square" in (figure, marks))]
    pattern = rng.choice(patterns)
    geometry: tuple[int, ...] = ()
    inset = 0
    if pattern in ("band_h", "band_v"):
        width = rng.randint(14, 26)
        geometry = (rng.randint(0, SIZE - width), width)
    elif pattern == "band_d":
        geometry = (rng.randint(14, 24), rng.choice((0, 1)), rng.randint(-20, 20))
    elif pattern in ("stripes_h", "stripes_v"):
        count = rng.randint(2, 4)
        geometry = (count, rng.randint(3, 6), rng.randint(0, 12))
    elif pattern == "frame":
        inset = rng.randint(0, 6)
        geometry = (inset, rng.randint(5, 9))
        inset += geometry[1] + 2
    radius = rng.randint(22, 34)
    reach = math.ceil(radius * _REACH[figure])
    lo, hi = reach + 3 + inset, SIZE - reach - 3 - inset
    center = (rng.randint(lo, hi), rng.randint(lo, hi))
    rotation = rng.randint(-15, 15) if figure == "square" else rng.randint(0, 359)
    if figure in ("circle", "diamond"):
        rotation = 0
    mark_radius = rng.randint(7, 10)
    wanted = rng.randint(1, MAX_MARKS)
    centers: list[tuple[int, int]] = []
    mark_reach = math.ceil(mark_radius * _REACH[marks])
    lo_m, hi_m = mark_reach + 2 + inset, SIZE - mark_reach - 2 - inset
    for _ in range(400):
        if len(centers) == wanted:
            break
        point = (rng.randint(lo_m, hi_m), rng.randint(lo_m, hi_m))
        if math.dist(point, center) < reach + mark_reach + 5:
            continue
        if any(math.dist(point, other) < 2 * mark_reach + 4 for other in centers):
            continue
        centers.append(point)
    return EmblemDesign(bg, pattern, pattern_colour, geometry, figure, figure_colour, center, radius,
                        rotation, marks, mark_colour, mark_radius, tuple(centers))


def render(design: EmblemDesign) -> Image.Image:
    """Draw the design: background, then pattern, then the figure, then the marks on top."""
    image = Image.new("RGB", (SIZE, SIZE), colour(design.background).rgb)
    draw = ImageDraw.Draw(image)
    fill = colour(design.pattern_colour).rgb
    geo = design.pattern_geometry
    if design.pattern == "band_h":
        draw.rectangle((0, geo[0], SIZE - 1, geo[0] + geo[1] - 1), fill=fill)
    elif design.pattern == "band_v":
        draw.rectangle((geo[0], 0, geo[0] + geo[1] - 1, SIZE - 1), fill=fill)
    elif design.pattern == "band_d":
        width, flip, shift = geo
        mid, half = SIZE / 2 + shift, width / math.sqrt(2)
        ends = [(x, SIZE / 2 + (x - mid)) for x in (-SIZE, 2 * SIZE)]
        pts = [(ends[0][0], ends[0][1] - half), (ends[1][0], ends[1][1] - half),
               (ends[1][0], ends[1][1] + half), (ends[0][0], ends[0][1] + half)]
        if flip:
            pts = [(SIZE - 1 - x, y) for x, y in pts]
        draw.polygon(pts, fill=fill)
    elif design.pattern in ("stripes_h", "stripes_v"):
        count, width, offset = geo
        step = SIZE // (count + 1)
        for i in range(1, count + 1):
            at = offset + i * step - width // 2
            box = (0, at, SIZE - 1, at + width - 1) if design.pattern == "stripes_h" \
                else (at, 0, at + width - 1, SIZE - 1)
            draw.rectangle(box, fill=fill)
    elif design.pattern == "frame":
        inset, width = geo
        draw.rectangle((inset, inset, SIZE - 1 - inset, SIZE - 1 - inset), outline=fill, width=width)
    elif design.pattern != "none":
        raise ValueError(f"unknown pattern {design.pattern!r}; known: {', '.join(PATTERNS)}")
    draw_shape(draw, design.figure, design.figure_center, design.figure_radius, design.figure_rotation,
               colour(design.figure_colour).rgb)
    for center in design.mark_centers:
        draw_shape(draw, design.marks, center, design.mark_radius, 0, colour(design.mark_colour).rgb)
    return image


def colour_fraction(image: Image.Image, name: str) -> float:
    """Share of pixels exactly equal to the named palette colour."""
    pixels = np.asarray(image.convert("RGB"))
    return float(np.all(pixels == np.array(colour(name).rgb, np.uint8), axis=2).mean())


# --- perceptual hash ------------------------------------------------------------------------------
# The same bits as `imagehash.phash` (greyscale, Lanczos resize to 32x32, 2-D DCT-II, top-left 8x8,
# above-median), computed with numpy alone so generation does not need scipy or imagehash.
_N = 32
_DCT = np.cos(np.pi * np.arange(_N)[:, None] * (2 * np.arange(_N)[None, :] + 1) / (2 * _N))


def phash64(image: Image.Image) -> int:
    """64-bit perceptual hash, bit order as `imagehash`'s hex string (row-major, MSB first)."""
    grey = np.asarray(image.convert("L").resize((_N, _N), Image.Resampling.LANCZOS), dtype=np.float64)
    low = (_DCT @ grey @ _DCT.T)[:8, :8]
    bits = (low > np.median(low)).flatten()
    return int("".join("1" if bit else "0" for bit in bits), 2)


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def hamming_to_all(value: int, others: np.ndarray) -> np.ndarray:
    """Hamming distances from one 64-bit hash to an array of uint64 hashes."""
    if others.size == 0:
        return np.zeros(0, dtype=np.int64)
    xor = np.bitwise_xor(others, np.uint64(value))
    counts: np.ndarray = _POPCOUNT[xor.view(np.uint8)].reshape(-1, 8).sum(axis=1).astype(np.int64)
    return counts


# --- encodings ------------------------------------------------------------------------------------

def png_bytes(image: Image.Image) -> bytes:
    """Lossless, small PNG: flat-colour images become palette PNGs (exact colours kept)."""
    rgb = np.asarray(image.convert("RGB"))
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    keys, index = np.unique(packed.ravel(), return_inverse=True)
    colours = np.stack([(keys >> 16) & 255, (keys >> 8) & 255, keys & 255], axis=1)
    buffer = io.BytesIO()
    if len(colours) <= 256:
        paletted = Image.fromarray(index.reshape(rgb.shape[:2]).astype(np.uint8), mode="P")
        paletted.putpalette(colours.astype(np.uint8).flatten().tolist())
        paletted.save(buffer, format="PNG", optimize=True)
    else:
        Image.fromarray(rgb).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def jpeg_copy(image: Image.Image, rng: random.Random, size: int, quality: int,
              max_crop: float = 0.08) -> bytes:
    """A web-page copy of an image: cropped by at most `max_crop` of each dimension in total,
    resized to `size` wide, JPEG-encoded (what a page republishing an emblem would serve)."""
    if not 0 <= max_crop <= 0.08:
        raise ValueError(f"max_crop must be within [0, 0.08], got {max_crop}")
    width, height = image.size
    crop_w = int(width * max_crop * rng.random())
    crop_h = int(height * max_crop * rng.random())
    left, top = rng.randint(0, crop_w), rng.randint(0, crop_h)
    cropped = image.crop((left, top, width - (crop_w - left), height - (crop_h - top)))
    new_h = max(1, round(size * cropped.size[1] / cropped.size[0]))
    resized = cropped.convert("RGB").resize((size, new_h), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    resized.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def random_pattern(seed_rng: np.random.Generator) -> Image.Image:
    """An unrelated picture for distractor pages: smooth colour noise with a few soft blobs, so it
    looks nothing like an emblem (no flat palette fields, no crisp shapes)."""
    grid = seed_rng.integers(0, 256, size=(rng_int(seed_rng, 3, 7), rng_int(seed_rng, 3, 7), 3))
    base = Image.fromarray(grid.astype(np.uint8), "RGB").resize((SIZE, SIZE), Image.Resampling.BICUBIC)
    pixels = np.asarray(base, dtype=np.int16)
    noise = seed_rng.integers(-25, 26, size=pixels.shape)
    image = Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(rng_int(seed_rng, 2, 6)):
        x0, y0 = (int(v) for v in seed_rng.integers(-20, SIZE, size=2))
        w, h = (int(v) for v in seed_rng.integers(10, 60, size=2))
        draw.line((x0, y0, x0 + w, y0 + h), fill=tuple(int(v) for v in seed_rng.integers(0, 256, 3)),
                  width=int(seed_rng.integers(1, 5)))
    return image


def rng_int(rng: np.random.Generator, low: int, high: int) -> int:
    """Inclusive integer draw from a numpy generator."""
    return int(rng.integers(low, high + 1))
