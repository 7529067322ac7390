"""Rendering of Shapes scenes (:mod:`t2igan.data.shapes`): flat-coloured objects on a light-grey
background, drawn with PIL at 4x the target size and box-filtered down (``Image.reduce``), so edges
are antialiased at any size from 32 to 256 px."""

from __future__ import annotations

import math
import random

from PIL import Image, ImageDraw

from ..errors import T2IError

BACKGROUND_RGB = (230, 230, 230)
COLOUR_RGB = {
    "red": (220, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 20),
    "purple": (140, 60, 180),
    "orange": (245, 125, 20),
    "cyan": (20, 190, 210),
    "pink": (240, 110, 180),
}
SIZE_FRACTION = {"small": 0.22, "large": 0.42}  # object extent / image width
POSITION_CENTRE = {  # (x, y) as fractions of the image, y downwards
    "left": (0.25, 0.5),
    "right": (0.75, 0.5),
    "top": (0.5, 0.25),
    "bottom": (0.5, 0.75),
    "centre": (0.5, 0.5),
}

SUPERSAMPLE = 4  # draw at 4x, then box-filter down
SIZE_JITTER = 0.06  # relative
CENTRE_JITTER = 0.06  # fraction of the image
MAX_ROTATION = 10.0  # degrees, non-circles
EDGE_MARGIN = 0.02  # fraction of the image kept free at the border
HALF_GAP = 0.01  # an object at a side stays this far from the middle line


def _object_layout(obj: dict, rng: random.Random | None) -> tuple[float, float, float, float]:
    """Centre ``(cx, cy)``, extent (all fractions of the image) and rotation (degrees) of one object.

    An object at a side stays inside that half of the image; every object stays inside the image.
    ``rng=None`` gives the canonical layout (no jitter).
    """

    def jitter(scale: float) -> float:
        return 0.0 if rng is None else rng.uniform(-scale, scale)

    extent = SIZE_FRACTION[obj["size"]] * (1.0 + jitter(SIZE_JITTER))
    half = extent / 2
    position = obj["position"]
    base_x, base_y = POSITION_CENTRE[position]
    lo_x = lo_y = half + EDGE_MARGIN
    hi_x = hi_y = 1.0 - half - EDGE_MARGIN
    if position == "left":
        hi_x = min(hi_x, 0.5 - half - HALF_GAP)
    elif position == "right":
        lo_x = max(lo_x, 0.5 + half + HALF_GAP)
    elif position == "top":
        hi_y = min(hi_y, 0.5 - half - HALF_GAP)
    elif position == "bottom":
        lo_y = max(lo_y, 0.5 + half + HALF_GAP)
    cx = min(max(base_x + jitter(CENTRE_JITTER), lo_x), hi_x)
    cy = min(max(base_y + jitter(CENTRE_JITTER), lo_y), hi_y)
    angle = 0.0 if obj["shape"] == "circle" else jitter(MAX_ROTATION)
    return cx, cy, extent, angle


def _unit_outline(shape: str) -> list[tuple[float, float]]:
    """Polygon of a shape with extent 1, centred at the origin (y downwards)."""
    if shape == "square":
        h = 0.44
        return [(-h, -h), (h, -h), (h, h), (-h, h)]
    if shape == "triangle":
        return [(0.0, -0.46), (0.5, 0.42), (-0.5, 0.42)]
    if shape == "diamond":
        return [(0.0, -0.5), (0.38, 0.0), (0.0, 0.5), (-0.38, 0.0)]
    if shape == "star":
        points = []
        shift = 0.5 * (1 - math.cos(math.pi / 5)) / 2  # centre the star's bounding box vertically
        for k in range(10):
            r = 0.5 if k % 2 == 0 else 0.21
            a = -math.pi / 2 + k * math.pi / 5
            points.append((r * math.cos(a), r * math.sin(a) + shift))
        return points
    raise T2IError(f"no outline for shape {shape!r}")


def draw_scene(attributes: dict, image_size: int = 64, rng: random.Random | None = None) -> Image.Image:
    """:func:`t2igan.data.shapes.render_scene` of checked attributes."""
    check_image_size(image_size)
    canvas = image_size * SUPERSAMPLE
    image = Image.new("RGB", (canvas, canvas), BACKGROUND_RGB)
    draw = ImageDraw.Draw(image)
    for obj in attributes["objects"]:
        cx, cy, extent, angle = _object_layout(obj, rng)
        cx, cy, scale = cx * canvas, cy * canvas, extent * canvas
        fill = COLOUR_RGB[obj["colour"]]
        if obj["shape"] == "circle":
            r = scale / 2
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
            continue
        cos_a, sin_a = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        points = [
            (cx + scale * (x * cos_a - y * sin_a), cy + scale * (x * sin_a + y * cos_a))
            for x, y in _unit_outline(obj["shape"])
        ]
        draw.polygon(points, fill=fill)
    return image.reduce(SUPERSAMPLE)


def check_image_size(image_size: int) -> None:
    if not isinstance(image_size, int) or not 32 <= image_size <= 256:
        raise T2IError(f"Shapes image_size must be an integer from 32 to 256, got {image_size!r}")
