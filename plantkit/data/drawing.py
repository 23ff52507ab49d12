"""Procedural plant drawings: one species, one random pose, one small RGB image.

Everything is drawn with PIL.ImageDraw polygons and lines on a canvas twice the output
size, then box-reduced (cheap anti-aliasing). Shapes are built in a local frame (the
object spans about one unit) as numpy point arrays and mapped to pixels by a pose
(rotation, scale, position). Per image: pose, size, position, colour jitter, background
clutter, occlusion, blur, lighting and sensor noise. Randomness comes only from the
Generator passed in, so the same generator state gives the same pixels.
"""

from __future__ import annotations

import colorsys
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from plantkit.data.species import Species

SUPERSAMPLE = 2
_T = np.linspace(0.0, 1.0, 33)
_CIRCLE = np.stack(
    [np.cos(np.linspace(0, 2 * np.pi, 17)[:-1]), np.sin(np.linspace(0, 2 * np.pi, 17)[:-1])], axis=1
)
_BACKGROUNDS = (
    (0.08, 0.45, 0.35),  # soil
    (0.28, 0.45, 0.30),  # foliage
    (0.25, 0.20, 0.55),  # dry grass
    (0.58, 0.15, 0.75),  # sky / paper
    (0.10, 0.10, 0.50),  # stone
    (0.00, 0.00, 0.15),  # dark
)

Colour = tuple[int, int, int]


def hsv(h: float, s: float, v: float) -> Colour:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (int(r * 255 + 0.5), int(g * 255 + 0.5), int(b * 255 + 0.5))


class Pose:
    """Local units -> canvas pixels: rotate by `angle`, scale by `scale`, move to (cx, cy)."""

    def __init__(self, cx: float, cy: float, scale: float, angle: float) -> None:
        c, s = math.cos(angle) * scale, math.sin(angle) * scale
        self.m = np.array([[c, s], [-s, c]])
        self.offset = np.array([cx, cy])
        self.scale = scale

    def pts(self, xy: np.ndarray) -> list[float]:
        """Flat [x0, y0, x1, y1, ...] for ImageDraw."""
        return (xy @ self.m + self.offset).ravel().tolist()

    def width(self, w: float) -> int:
        return max(1, int(round(w * self.scale)))


def _ellipse(cx: float, cy: float, rx: float, ry: float, angle: float = 0.0) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    pts = _CIRCLE * (rx, ry)
    return pts @ np.array([[c, s], [-s, c]]) + (cx, cy)


# ----------------------------------------------------------------------------- background


def _background(draw: ImageDraw.ImageDraw, size: int, rng: np.random.Generator) -> Colour:
    h, s, v = _BACKGROUNDS[int(rng.integers(len(_BACKGROUNDS)))]
    u = rng.random(5)
    h, s, v = h + 0.08 * u[0] - 0.04, s * (0.6 + 0.7 * u[1]), v * (0.7 + 0.6 * u[2])
    base = hsv(h, s, v)
    draw.rectangle((0, 0, size, size), fill=base)
    # Blobs (stones, shadows, out-of-focus leaves), then grass strokes; numbers drawn at once.
    blobs = rng.random((2 + int(u[3] * 6), 8))
    for cx, cy, rx, ry, a, dh, ds, dv in blobs:
        colour = hsv(h + 0.16 * dh - 0.08, s * (0.5 + 0.9 * ds), v * (0.55 + 0.85 * dv))
        pts = _ellipse(
            cx * size, cy * size, (0.05 + 0.25 * rx) * size, (0.05 + 0.25 * ry) * size, a * np.pi
        )
        draw.polygon(pts.ravel().tolist(), fill=colour)
    grass = rng.random((int(u[4] * 12), 7))
    for x0, y0, ln, tilt, gh, gs, gv in grass:
        x0, y0, ln, tilt = x0 * size, (0.3 + 0.8 * y0) * size, (0.1 + 0.35 * ln) * size, tilt - 0.5
        colour = hsv(0.18 + 0.17 * gh, 0.3 + 0.5 * gs, 0.25 + 0.5 * gv)
        draw.line(
            (x0, y0, x0 + ln * math.sin(tilt), y0 - ln * math.cos(tilt)),
            fill=colour,
            width=SUPERSAMPLE if gv > 0.5 else SUPERSAMPLE // 2 + 1,
        )
    return base


# ---------------------------------------------------------------------------------- leaf


def _leaf_outline(
    sp: Species, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outline, midrib and half-widths (local units, base at y=+0.5, tip at y=-0.5)."""
    t = _T
    aspect = sp.aspect * rng.uniform(0.88, 1.12)
    shape = sp.shape
    if shape == "ovate":
        w = np.sin(np.pi * t**0.7)
    elif shape == "obovate":
        w = np.sin(np.pi * t**1.5)
    elif shape == "lanceolate":
        w, aspect = np.sin(np.pi * t**0.85) ** 1.4, aspect * 0.55
    elif shape == "cordate":
        w = np.sin(np.pi * (0.12 + 0.88 * t) ** 0.8)
    elif shape == "lobed":
        lobes = max(2, sp.n_parts)
        w = np.sin(np.pi * t**0.8) * (1 - 0.45 * (0.5 - 0.5 * np.cos(2 * np.pi * lobes * t)))
    else:  # linear
        w, aspect = (1 - t**3) * 0.5 + 0.1 * np.sin(np.pi * t), aspect * 0.22
    w = w * 0.5
    inner = (t > 0.04) & (t < 0.94)
    if sp.margin == "serrated":
        w = w * (1 + np.where(inner, sp.tooth_depth * 2 * ((sp.teeth * t) % 1.0), 0.0))
    elif sp.margin == "crenate":
        w = w * (1 + np.where(inner, sp.tooth_depth * 2 * np.abs(np.sin(np.pi * sp.teeth * t)), 0))
    bend = sp.curvature + rng.uniform(-0.06, 0.06)
    mid_x = bend * np.sin(np.pi * t)
    y = 0.5 - t
    if shape == "cordate":
        y = y + 0.12 * np.clip(1 - t / 0.2, 0, 1) ** 2
    right = np.stack([mid_x + w * aspect * 2, y], axis=1)
    left = np.stack([mid_x - w * aspect * 2, y], axis=1)[::-1]
    outline = np.concatenate([[[0.0, 0.5]], right, left])
    midrib = np.stack([mid_x, 0.5 - t], axis=1)
    return outline, midrib, w * aspect * 2


def _palmate_outline(sp: Species, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    k = max(3, sp.n_parts)
    spread = 0.8 * np.pi
    phi = np.linspace(-spread, spread, 49)
    centres = np.linspace(-spread, spread, k + 2)[1:-1]
    sigma = spread / k * (0.35 + 0.5 * sp.aspect)
    r = 0.18 + 0.42 * np.exp(-(((phi[:, None] - centres[None, :]) / sigma) ** 2)).max(axis=1)
    if sp.margin != "smooth":
        r = r * (1 + sp.tooth_depth * np.abs(np.sin(phi * sp.teeth * 2)))
    r = r * rng.uniform(0.92, 1.08)
    outline = np.stack([r * np.sin(phi), 0.25 - r * np.cos(phi)], axis=1)
    outline = np.concatenate([[[0.0, 0.25]], outline])
    tips = np.stack([0.55 * np.sin(centres), 0.25 - 0.55 * np.cos(centres)], axis=1)
    return outline, tips


def _draw_palmate_leaf(
    draw: ImageDraw.ImageDraw,
    sp: Species,
    pose: Pose,
    rng: np.random.Generator,
    vein: Colour,
    body: Colour,
    line_w: int,
) -> None:
    outline, tips = _palmate_outline(sp, rng)
    draw.line(pose.pts(np.array([[0.0, 0.25], [0.0, 0.5]])), fill=vein, width=line_w)
    draw.polygon(pose.pts(outline), fill=body)
    for tip in tips:
        draw.line(
            pose.pts(np.array([[0.0, 0.25], tip * 0.85 + [0.0, 0.04]])), fill=vein, width=line_w
        )


@dataclass(frozen=True)
class _LeafPaint:
    """What the leaf's spots, veins and stripes are drawn with: the pen, the species, its
    pose, the vein colour and width, and the leaf's midrib and half-widths along it."""

    draw: ImageDraw.ImageDraw
    sp: Species
    pose: Pose
    vein: Colour
    line_w: int
    midrib: np.ndarray
    half: np.ndarray


def _draw_leaf_spots(p: _LeafPaint, rng: np.random.Generator) -> None:
    n = int(4 + 14 * p.sp.texture_density)
    t = rng.uniform(0.1, 0.9, n)
    i = (t * (len(_T) - 1)).astype(int)
    xy = np.stack([p.midrib[i, 0] + rng.uniform(-0.7, 0.7, n) * p.half[i], 0.5 - t], axis=1)
    r = 0.025
    for x, y in xy:
        p.draw.polygon(p.pose.pts(_ellipse(x, y, r, r)), fill=p.vein)


def _draw_veins(p: _LeafPaint) -> None:
    midrib, half, width = p.midrib, p.half, max(1, p.line_w // 2)
    n = p.sp.n_veins
    if p.sp.venation == "pinnate":
        for t0 in np.linspace(0.15, 0.75, n):
            i0, i1 = int(t0 * 32), min(32, int((t0 + 0.13) * 32))
            for side in (-1, 1):
                end = [midrib[i1, 0] + side * 0.8 * half[i1], midrib[i1, 1]]
                p.draw.line(p.pose.pts(np.array([midrib[i0], end])), fill=p.vein, width=width)
    elif p.sp.venation == "palmate":
        for c in np.linspace(-0.8, 0.8, n):
            i1 = int(0.55 * 32)
            end = [midrib[i1, 0] + c * half[i1], 0.5 - 0.55 - 0.25 * (1 - abs(c))]
            p.draw.line(p.pose.pts(np.array([midrib[1], end])), fill=p.vein, width=width)
    else:  # parallel
        for c in np.linspace(-0.6, 0.6, n):
            curve = np.stack([midrib[:, 0] + c * half, midrib[:, 1]], axis=1)[3:-4]
            p.draw.line(p.pose.pts(curve), fill=p.vein, width=width)


def _draw_leaf_stripes(p: _LeafPaint) -> None:
    midrib, half = p.midrib, p.half
    for t0 in np.linspace(0.2, 0.8, 3 + int(3 * p.sp.texture_density)):
        i = int(t0 * 32)
        seg = np.array(
            [
                [midrib[i, 0] - half[i] * 0.9, midrib[i, 1]],
                [midrib[i, 0] + half[i] * 0.9, midrib[i, 1] - 0.05],
            ]
        )
        p.draw.line(p.pose.pts(seg), fill=p.vein, width=p.line_w)


def _draw_leaf(
    draw: ImageDraw.ImageDraw,
    sp: Species,
    pose: Pose,
    rng: np.random.Generator,
    body: Colour,
    vein: Colour,
) -> None:
    line_w = pose.width(0.025)
    if sp.shape == "palmate":
        _draw_palmate_leaf(draw, sp, pose, rng, vein, body, line_w)
        return
    outline, midrib, half = _leaf_outline(sp, rng)
    draw.line(pose.pts(np.array([[0.0, 0.5], [0.0, 0.62]])), fill=vein, width=line_w)  # petiole
    draw.polygon(pose.pts(outline), fill=body)
    paint = _LeafPaint(draw, sp, pose, vein, line_w, midrib, half)
    if sp.texture == "spots":
        _draw_leaf_spots(paint, rng)
    draw.line(pose.pts(midrib[2:-3]), fill=vein, width=line_w)
    _draw_veins(paint)
    if sp.texture == "stripes":
        _draw_leaf_stripes(paint)


# -------------------------------------------------------------------------------- flower


def _draw_flower(
    draw: ImageDraw.ImageDraw,
    sp: Species,
    pose: Pose,
    rng: np.random.Generator,
    body: Colour,
    centre: Colour,
) -> None:
    n = sp.n_parts
    phase = rng.uniform(0, 2 * np.pi)
    t = _T[::2]
    length = 0.5 * rng.uniform(0.92, 1.08)
    width = length * min(0.9, sp.aspect * 1.4 * math.sqrt(6.0 / n))
    if sp.shape == "round":
        w = np.sin(np.pi * t**0.6) * width * 0.5
    elif sp.shape == "pointed":
        w = np.sin(np.pi * t**0.9) ** 1.3 * width * 0.45
    elif sp.shape == "narrow":
        w = np.sin(np.pi * t**0.7) * width * 0.25
    else:  # notched
        w = np.sin(np.pi * (t * 0.85) ** 0.6) * width * 0.5
    r = 0.06 + t * (length - 0.06)
    petal = np.concatenate([np.stack([w, r], axis=1), np.stack([-w, r], axis=1)[::-1]])
    if sp.shape == "notched":
        petal = np.concatenate([petal[: len(t)], [[0.0, length * 0.82]], petal[len(t) :]])
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in body))
    for i in range(n):
        a = phase + 2 * np.pi * i / n
        c, sn = math.cos(a), math.sin(a)
        rot = np.array([[c, sn], [-sn, c]])
        shade = hsv(h, s, v * rng.uniform(0.85, 1.05))
        draw.polygon(pose.pts(petal @ rot), fill=shade)
        if sp.texture == "stripes":
            draw.line(
                pose.pts(np.array([[0.0, 0.08], [0.0, length * 0.7]]) @ rot),
                fill=hsv(h, min(1.0, s + 0.3), v * 0.6),
                width=pose.width(0.02),
            )
        elif sp.texture == "spots":
            draw.polygon(
                pose.pts(_ellipse(0.0, length * 0.3, 0.03, 0.03) @ rot),
                fill=hsv(h + 0.05, 1.0, v * 0.45),
            )
    rc = 0.08 + 0.22 * sp.part_size
    draw.polygon(pose.pts(_ellipse(0.0, 0.0, rc, rc)), fill=centre)
    if sp.part_size > 0.3:  # stamens ring
        ring = _CIRCLE[::2] * rc * 1.2
        for x, y in ring:
            draw.point(pose.pts(np.array([[x, y]])), fill=hsv(0.14, 0.9, 0.95))


# --------------------------------------------------------------------------------- fruit


class _Paint:
    """What an organ's shapes are drawn with (an organ drawer's arguments): the pen, the
    species, its pose, the random draws, the body colour as HSV and the second colour."""

    def __init__(
        self,
        draw: ImageDraw.ImageDraw,
        sp: Species,
        pose: Pose,
        rng: np.random.Generator,
        body: Colour,
        second: Colour,
    ) -> None:
        self.draw, self.sp, self.pose, self.rng = draw, sp, pose, rng
        self.body, self.second = body, second
        self.h, self.s, self.v = colorsys.rgb_to_hsv(*(c / 255 for c in body))


_P = TypeVar("_P", bound=_Paint)


class _FruitPaint(_Paint):
    """Pens shared by the fruit shapes: body tones, highlight, stalk (the second colour)
    and its width."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.stalk = self.second
        self.shine = hsv(self.h, self.s * 0.3, min(1.0, self.v + 0.4))
        self.sw = self.pose.width(0.03)

    def berry(self, x: float, y: float, r: float) -> None:
        draw, pose = self.draw, self.pose
        draw.polygon(
            pose.pts(_ellipse(x, y, r, r)),
            fill=hsv(self.h, self.s, self.v * self.rng.uniform(0.8, 1.05)),
        )
        draw.polygon(
            pose.pts(_ellipse(x - r * 0.35, y - r * 0.35, r * 0.25, r * 0.2)), fill=self.shine
        )
        if self.sp.texture == "spots":
            draw.point(pose.pts(np.array([[x + r * 0.3, y + r * 0.2]])), fill=self.stalk)


def _draw_berries(p: _FruitPaint) -> None:
    sp = p.sp
    n = sp.n_parts + 1
    r = 0.06 + 0.16 * sp.part_size
    xy = p.rng.normal(0, 0.16, (n, 2)) + (0, 0.08)
    for x, y in xy:
        p.draw.line(p.pose.pts(np.array([[0.0, -0.45], [x, y]])), fill=p.stalk, width=p.sw)
    for x, y in xy:
        p.berry(x, y, r)


def _draw_grapes(p: _FruitPaint) -> None:
    rows = 2 + p.sp.n_parts // 2
    r = 0.42 / rows
    p.draw.line(p.pose.pts(np.array([[0.0, -0.5], [0.0, 0.3]])), fill=p.stalk, width=p.sw)
    for j in range(rows):
        m = rows - j
        for k in range(m):
            p.berry((k - (m - 1) / 2) * r * 1.8 + p.rng.normal(0, r * 0.1), -0.35 + j * r * 1.6, r)


def _draw_round_fruit(p: _FruitPaint) -> None:
    draw, sp, pose = p.draw, p.sp, p.pose
    rx, ry = 0.32, 0.32 * (0.8 + 0.4 * sp.aspect)
    draw.line(pose.pts(np.array([[0.0, -ry], [0.05, -ry - 0.15]])), fill=p.stalk, width=p.sw)
    draw.polygon(pose.pts(_ellipse(0.0, 0.0, rx, ry)), fill=p.body)
    if sp.texture == "stripes":
        for c in np.linspace(-0.6, 0.6, 4):
            draw.line(
                pose.pts(np.array([[c * rx, -ry * 0.8], [c * rx * 1.1, 0], [c * rx, ry * 0.8]])),
                fill=hsv(p.h, p.s, p.v * 0.6),
                width=p.sw,
            )
    draw.polygon(pose.pts(_ellipse(-rx * 0.4, -ry * 0.4, rx * 0.2, ry * 0.14, 0.6)), fill=p.shine)
    leaf = _ellipse(0.14, -ry - 0.12, 0.12, 0.045, 0.4)
    draw.polygon(pose.pts(leaf), fill=hsv(0.3, 0.7, 0.5))


def _draw_elongated_fruit(p: _FruitPaint) -> None:
    """Pods, bananas, chillies."""
    draw, sp, pose = p.draw, p.sp, p.pose
    t = _T
    w = np.sin(np.pi * t**0.8) * 0.5 * sp.aspect * 0.6
    mid = (sp.curvature * 2) * np.sin(np.pi * t)
    y = 0.45 - 0.9 * t
    outline = np.concatenate([np.stack([mid + w, y], axis=1), np.stack([mid - w, y], axis=1)[::-1]])
    draw.line(pose.pts(np.array([[0.0, 0.45], [0.0, 0.55]])), fill=p.stalk, width=p.sw)
    draw.polygon(pose.pts(outline), fill=p.body)
    if sp.texture != "plain":
        for ti in np.linspace(0.2, 0.8, 3):
            i = int(ti * 32)
            draw.point(pose.pts(np.array([[mid[i], y[i]]])), fill=p.stalk)


_FRUIT_SHAPES = {"berries": _draw_berries, "grapes": _draw_grapes, "round": _draw_round_fruit}


def _by_shape(paint: type[_P], shapes: Mapping[str, Callable[[_P], None]],
              default: Callable[[_P], None]) -> Callable[..., None]:
    """An organ drawer that draws with `paint`'s pens the species' shape (else `default`)."""

    def draw_organ(*args) -> None:
        pens = paint(*args)
        shapes.get(pens.sp.shape, default)(pens)

    return draw_organ


_draw_fruit = _by_shape(_FruitPaint, _FRUIT_SHAPES, _draw_elongated_fruit)


# ---------------------------------------------------------------------------------- bark


def _draw_bark(
    draw: ImageDraw.ImageDraw,
    sp: Species,
    pose: Pose,
    rng: np.random.Generator,
    body: Colour,
    dark: Colour,
) -> None:
    half_w = rng.uniform(0.35, 0.6)
    trunk = np.array([[-half_w, -0.9], [half_w, -0.9], [half_w, 0.9], [-half_w, 0.9]])
    draw.polygon(pose.pts(trunk), fill=body)
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in body))
    lw = pose.width(0.03)
    n = sp.n_parts
    if sp.shape == "fissured":
        ys = np.linspace(-0.9, 0.9, 13)
        for x0 in np.linspace(-half_w, half_w, 2 * n + 1)[1:-1] + rng.uniform(-0.05, 0.05):
            xs = x0 + rng.normal(0, 0.025, len(ys)).cumsum() * 0.5
            draw.line(pose.pts(np.stack([xs, ys], axis=1)), fill=dark, width=lw)
    elif sp.shape == "plated":
        cols = max(2, n // 2 + 1)
        pw, ph = 2 * half_w / cols, 1.8 / (cols * 1.5)
        for j in range(int(1.8 / ph) + 1):
            for i in range(cols):
                x, y = -half_w + (i + 0.5) * pw, -0.9 + (j + 0.5) * ph
                plate = _ellipse(x, y, pw * 0.45, ph * 0.42, 0) + rng.normal(0, 0.012, (16, 2))
                draw.polygon(pose.pts(plate), fill=dark)
                draw.polygon(
                    pose.pts((plate - (x, y)) * 0.8 + (x, y)),
                    fill=hsv(h, s, v * rng.uniform(0.9, 1.1)),
                )
    elif sp.shape == "lenticels":
        for _ in range(3 * n):
            x, y = rng.uniform(-half_w, half_w), rng.uniform(-0.9, 0.9)
            ln = rng.uniform(0.05, 0.12)
            draw.line(pose.pts(np.array([[x - ln, y], [x + ln, y]])), fill=dark, width=lw)
    else:  # peeling
        for _ in range(n + 2):
            x, y = rng.uniform(-half_w, half_w), rng.uniform(-0.9, 0.9)
            patch = _ellipse(x, y, rng.uniform(0.08, 0.2), rng.uniform(0.1, 0.3), 0)
            draw.polygon(pose.pts(patch), fill=hsv(h + 0.03, s * 0.6, min(1.0, v * 1.35)))
    if sp.texture == "spots":  # lichens
        for _ in range(int(3 + 8 * sp.texture_density)):
            x, y = rng.uniform(-half_w, half_w), rng.uniform(-0.9, 0.9)
            r = rng.uniform(0.03, 0.07)
            draw.polygon(pose.pts(_ellipse(x, y, r, r)), fill=hsv(0.2, 0.25, 0.75))


# --------------------------------------------------------------------------------- habit


class _HabitPaint(_Paint):
    """Pens shared by the whole-plant shapes: foliage tones, stem, bloom (the second
    colour), leaf length."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.bloom = self.second
        self.stem = hsv(self.h, self.s, self.v * 0.7)
        self.lw = self.pose.width(0.025)
        self.leaf_len = 0.12 + 0.25 * self.sp.part_size

    def foliage(self, lo: float, hi: float) -> Colour:
        """A foliage tone, its value jittered by a factor drawn from [lo, hi)."""
        return hsv(self.h, self.s, self.v * self.rng.uniform(lo, hi))


def _draw_upright(p: _HabitPaint) -> None:
    draw, sp, pose, rng = p.draw, p.sp, p.pose, p.rng
    leaf_len = p.leaf_len
    t = _T[::4]
    xs = sp.curvature * np.sin(np.pi * t)
    ys = 0.5 - t
    draw.line(pose.pts(np.stack([xs, ys], axis=1)), fill=p.stem, width=p.lw)
    for i, ti in enumerate(np.linspace(0.15, 0.8, sp.n_parts)):
        side = 1 if i % 2 else -1
        j = int(ti * (len(t) - 1))
        a = side * rng.uniform(0.7, 1.2)
        x0, y0 = xs[j], ys[j]
        cx, cy = x0 + math.sin(a) * leaf_len * 0.5, y0 - math.cos(a) * leaf_len * 0.5
        lf = _ellipse(cx, cy, leaf_len * sp.aspect * 0.5, leaf_len * 0.5, a)
        draw.polygon(pose.pts(lf), fill=p.foliage(0.85, 1.1))
    r = 0.06 + 0.06 * sp.part_size
    draw.polygon(pose.pts(_ellipse(xs[-1], ys[-1], r, r)), fill=p.bloom)


def _draw_rosette(p: _HabitPaint) -> None:
    draw, sp, pose, rng = p.draw, p.sp, p.pose, p.rng
    k = sp.n_parts + 3
    phase = rng.uniform(0, 2 * np.pi)
    for i in range(k):
        a = phase + 2 * np.pi * i / k
        ln = 0.42 * rng.uniform(0.85, 1.1)
        lf = _ellipse(
            math.sin(a) * ln * 0.5, -math.cos(a) * ln * 0.5, ln * sp.aspect * 0.4, ln * 0.5, a
        )
        draw.polygon(pose.pts(lf), fill=p.foliage(0.8, 1.1))
    if sp.texture != "plain":
        r = 0.05 + 0.1 * sp.part_size
        draw.polygon(pose.pts(_ellipse(0.0, 0.0, r, r)), fill=p.bloom)


def _draw_grass(p: _HabitPaint) -> None:
    draw, sp, pose, rng = p.draw, p.sp, p.pose, p.rng
    for _ in range(3 * sp.n_parts):
        x0 = rng.uniform(-0.15, 0.15)
        a = rng.uniform(-0.6, 0.6)
        ln = rng.uniform(0.5, 1.0)
        bend = a + sp.curvature * 3
        pts = np.array(
            [
                [x0, 0.5],
                [x0 + math.sin(a) * ln * 0.5, 0.5 - ln * 0.5],
                [x0 + math.sin(bend) * ln, 0.5 - ln * math.cos(bend)],
            ]
        )
        draw.line(pose.pts(pts), fill=p.foliage(0.8, 1.15), width=p.lw)
        if sp.texture != "plain" and rng.random() < 0.4:
            draw.polygon(pose.pts(_ellipse(pts[2, 0], pts[2, 1], 0.03, 0.08, bend)), fill=p.bloom)


def _draw_shrub(p: _HabitPaint) -> None:
    draw, sp, pose, rng = p.draw, p.sp, p.pose, p.rng
    for x0 in (-0.1, 0.0, 0.1):
        draw.line(
            pose.pts(np.array([[x0, 0.5], [x0 * 2, 0.1]])), fill=hsv(0.08, 0.5, 0.35), width=p.lw
        )
    for _ in range(6 + 2 * sp.n_parts):
        x, y = rng.normal(0, 0.22), rng.normal(-0.1, 0.16)
        r = p.leaf_len * rng.uniform(0.5, 0.9)
        ellipse = _ellipse(x, y, r, r * sp.aspect * 1.3, rng.uniform(0, 3))
        draw.polygon(pose.pts(ellipse), fill=p.foliage(0.75, 1.15))
    if sp.texture != "plain":
        for _ in range(int(3 + 8 * sp.texture_density)):
            x, y = rng.normal(0, 0.2), rng.normal(-0.1, 0.14)
            draw.polygon(pose.pts(_ellipse(x, y, 0.035, 0.035)), fill=p.bloom)


_HABIT_SHAPES = {"upright": _draw_upright, "rosette": _draw_rosette, "grass": _draw_grass}


_draw_habit = _by_shape(_HabitPaint, _HABIT_SHAPES, _draw_shrub)


_DRAWERS = {
    "leaf": _draw_leaf,
    "flower": _draw_flower,
    "fruit": _draw_fruit,
    "bark": _draw_bark,
    "habit": _draw_habit,
}


# -------------------------------------------------------------------------------- render


def render(sp: Species, rng: np.random.Generator, size: int) -> Image.Image:
    """One RGB image of `sp`, `size` x `size` pixels."""
    canvas = size * SUPERSAMPLE
    img = Image.new("RGB", (canvas, canvas))
    draw = ImageDraw.Draw(img)
    _background(draw, canvas, rng)

    # A distractor leaf of some other plant now and then.
    if rng.random() < 0.3:
        px, py = rng.uniform(0, canvas, 2)
        pose = Pose(px, py, canvas * rng.uniform(0.2, 0.45), rng.uniform(0, 2 * np.pi))
        lf = _ellipse(0.0, 0.0, rng.uniform(0.1, 0.3), 0.5)
        draw.polygon(
            pose.pts(lf),
            fill=hsv(rng.uniform(0.18, 0.4), rng.uniform(0.3, 0.8), rng.uniform(0.25, 0.7)),
        )

    upright = sp.organ in ("bark", "habit")
    angle = rng.normal(0, 0.2) if upright else rng.uniform(0, 2 * np.pi)
    scale = canvas * (rng.uniform(0.6, 1.0) if sp.organ != "bark" else rng.uniform(0.7, 1.3))
    cx, cy = canvas * (0.5 + rng.uniform(-0.14, 0.14, 2))
    pose = Pose(cx, cy, scale, angle)
    body = hsv(
        sp.hue + rng.normal(0, 0.015),
        sp.sat * rng.uniform(0.85, 1.15),
        sp.val * rng.uniform(0.85, 1.15),
    )
    second = hsv(
        sp.hue2 + rng.normal(0, 0.015),
        sp.sat2 * rng.uniform(0.85, 1.15),
        sp.val2 * rng.uniform(0.85, 1.15),
    )
    _DRAWERS[sp.organ](draw, sp, pose, rng, body, second)

    if rng.random() < 0.25:  # occlusion: a finger, a stem, a label, another plant
        ox, oy = rng.uniform(0, canvas, 2)
        rx, ry = canvas * rng.uniform(0.08, 0.25, 2)
        colour = hsv(rng.uniform(0, 1), rng.uniform(0, 0.7), rng.uniform(0.2, 0.95))
        if rng.random() < 0.5:
            draw.rectangle((ox - rx, oy - ry, ox + rx, oy + ry), fill=colour)
        else:
            draw.polygon(_ellipse(ox, oy, rx, ry, rng.uniform(0, 3)).ravel().tolist(), fill=colour)

    img = img.reduce(SUPERSAMPLE)
    if rng.random() < 0.4:  # out of focus / motion
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.1) * size / 64))

    # Lighting (gain, colour cast, offset) through a lookup table, then sensor noise: a
    # random window of a fixed noise texture (far cheaper than fresh Gaussian noise).
    gain = rng.uniform(0.65, 1.3) * rng.uniform(0.92, 1.08, 3)
    lut = np.rint(_RAMP[None, :] * gain[:, None] + rng.uniform(-12, 12)).astype(np.int16)
    bank = _noise_bank(int(rng.integers(len(_NOISE_SIGMAS))), size)
    ox, oy = (int(o) for o in rng.integers(0, bank.shape[0] - size + 1, 2))
    arr = lut.ravel()[np.asarray(img, dtype=np.intp) + _CHANNEL_OFFSET]
    arr += bank[oy : oy + size, ox : ox + size]
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


_RAMP = np.arange(256, dtype=np.float64)
_CHANNEL_OFFSET = np.array([0, 256, 512], dtype=np.intp)
_NOISE_SIGMAS = (2.0, 3.5, 5.0, 7.0, 9.0)


@functools.lru_cache(maxsize=32)
def _noise_bank(level: int, size: int) -> np.ndarray:
    """Gaussian sensor noise (int16, zero mean), fixed forever: seeded by its level and side."""
    side = max(256, 2 * size)
    rng = np.random.default_rng([level, side])
    noise = np.rint(_NOISE_SIGMAS[level] * rng.standard_normal((side, side, 3)))
    noise = noise.astype(np.int16)
    noise.flags.writeable = False
    return noise


__all__ = ["render"]
