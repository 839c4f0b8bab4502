"""Drawing helpers and the colour table of the image task families (the one place for both).

Everything here draws into in-memory PIL images; nothing touches the file system except the
scikit-image sample photographs, which ship inside the installed package (no downloads).
All randomness comes from the ``numpy.random.Generator`` the caller passes in. The colour
values pin pixels of the frozen suites: never change them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps
from skimage import data as skimage_data  # lazy: a photo loads on first use

RGB = tuple[int, int, int]

# Saturated colours whose hues are at least 23 degrees apart, so a hue lookup names them safely.
# (The video families have their own, different table: ``envs/video``.)
SHAPE_PALETTE: dict[str, RGB] = {
    "red": (215, 35, 35),
    "orange": (240, 135, 20),
    "yellow": (230, 210, 25),
    "green": (40, 165, 60),
    "cyan": (25, 190, 200),
    "blue": (45, 80, 215),
    "purple": (135, 55, 200),
    "magenta": (215, 45, 165),
}
SHAPE_COLOURS: tuple[str, ...] = tuple(SHAPE_PALETTE)  # the colour names, in table order
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond")

# Characters used in printed codes: no I/O/0/1, which are easy to confuse with each other.
CODE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
CODE_DIGITS = "23456789"
# What the expert programs' OCR tries to match: every capital, digit and the dash.
CODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
TEXT_TRACKING = 2  # extra pixels between characters of printed codes and tick labels


@functools.lru_cache(maxsize=64)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's built-in scalable font at ``size`` (no font file from the system)."""
    return ImageFont.load_default(size=size)


def rgb_int(values: Sequence[float]) -> RGB:
    """Clip and convert three numbers to an ``(r, g, b)`` tuple of ints."""
    r, g, b = (int(np.clip(round(float(v)), 0, 255)) for v in values)
    return (r, g, b)


def muted_colour(rng: np.random.Generator, lum: tuple[int, int] = (70, 190), tint: int = 14) -> RGB:
    """A greyish colour (channel spread at most ``2 * tint``) for background clutter."""
    base = rng.uniform(lum[0], lum[1])
    return rgb_int(base + rng.uniform(-tint, tint, size=3))


def textured_background(
    rng: np.random.Generator,
    width: int,
    height: int,
    lum: tuple[int, int] = (95, 175),
    tint: int = 16,
    tile: int = 512,
) -> Image.Image:
    """A smooth, low-saturation texture: one random tile mirrored across the canvas.

    The mirrored tiling is laid out at half resolution and doubled with nearest-neighbour
    resampling (the texture is smooth, so this is invisible and halves the cost at 8K).
    """
    cells = 8
    base = rng.uniform(lum[0], lum[1], size=(cells, cells, 1))
    tints = rng.uniform(-tint, tint, size=(cells, cells, 3))
    small = np.clip(base + tints, 0, 255).astype(np.uint8)
    half = tile // 2
    tile_img = Image.fromarray(small).resize((half, half), Image.Resampling.BILINEAR)
    mirrored_x = ImageOps.mirror(tile_img)
    variants = [tile_img, mirrored_x, ImageOps.flip(tile_img), ImageOps.flip(mirrored_x)]
    canvas = Image.new("RGB", ((width + 1) // 2, (height + 1) // 2))
    for row, y in enumerate(range(0, canvas.height, half)):
        for col, x in enumerate(range(0, canvas.width, half)):
            canvas.paste(variants[(col % 2) + 2 * (row % 2)], (x, y))
    return canvas.resize((width, height), Image.Resampling.NEAREST)


def muted_colours(rng: np.random.Generator, count: int, lum: tuple[int, int] = (70, 190), tint: int = 14) -> list[RGB]:
    """``count`` greyish colours (channel spread at most ``2 * tint``), drawn in one go."""
    base = rng.uniform(lum[0], lum[1], size=(count, 1))
    values = np.clip(np.round(base + rng.uniform(-tint, tint, size=(count, 3))), 0, 255).astype(int)
    return [(r, g, b) for r, g, b in values.tolist()]


def grey_clutter(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    width: int,
    height: int,
    count: int,
    max_size: int = 200,
    lum: tuple[int, int] = (70, 190),
) -> None:
    """Scatter ``count`` low-saturation lines, boxes, ellipses and triangles over the canvas."""
    kinds = rng.integers(0, 4, size=count).tolist()
    xs = rng.integers(0, width, size=count).tolist()
    ys = rng.integers(0, height, size=count).tolist()
    sizes = rng.integers(12, max_size, size=(count, 2)).tolist()
    angles = rng.uniform(0, np.pi, size=count)
    ends = np.stack([np.cos(angles), np.sin(angles)], axis=1).tolist()
    widths = rng.integers(1, 5, size=count).tolist()
    corners = rng.uniform(-1, 1, size=(count, 3, 2)).tolist()
    colours = muted_colours(rng, count, lum)
    for i in range(count):
        x, y, (sw, sh), colour = xs[i], ys[i], sizes[i], colours[i]
        if kinds[i] == 0:
            dx, dy = ends[i]
            draw.line([(x, y), (x + sw * dx, y + sw * dy)], fill=colour, width=widths[i])
        elif kinds[i] == 1:
            draw.rectangle([x, y, x + sw, y + sh], fill=colour)
        elif kinds[i] == 2:
            draw.ellipse([x, y, x + sw, y + sh], fill=colour)
        else:
            draw.polygon([(x + cx * sw, y + cy * sh) for cx, cy in corners[i]], fill=colour)


def shape_points(shape: str, x: int, y: int, size: int) -> list[tuple[float, float]]:
    """Polygon vertices of a triangle (apex up) or diamond filling the box at ``(x, y)``."""
    s = size - 1
    if shape == "triangle":
        return [(x + s / 2, y), (x + s, y + s), (x, y + s)]
    if shape == "diamond":
        return [(x + s / 2, y), (x + s, y + s / 2), (x + s / 2, y + s), (x, y + s / 2)]
    raise ValueError(f"no polygon for shape {shape!r}")


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, x: int, y: int, size: int, fill: RGB | int) -> None:
    """Draw a filled ``shape`` occupying the ``size`` x ``size`` box whose top-left pixel is ``(x, y)``."""
    box = [x, y, x + size - 1, y + size - 1]
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon(shape_points(shape, x, y, size), fill=fill)


def grid_cells(width: int, height: int, cell: int) -> list[tuple[int, int]]:
    """Top-left corners of the whole ``cell``-sized squares that tile the canvas."""
    return [(cx * cell, cy * cell) for cy in range(height // cell) for cx in range(width // cell)]


def scatter_shapes(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    cells: list[tuple[int, int]],
    cell: int,
    min_size: int,
    colours: Sequence[str] = SHAPE_COLOURS,
    margin: int = 6,
) -> None:
    """Draw one random coloured shape inside each given grid cell (shapes never touch)."""
    n = len(cells)
    max_size = cell - 2 * margin
    sizes = rng.integers(min_size, max_size + 1, size=n)
    offsets = (rng.random((n, 2)) * (max_size - sizes + 1)[:, None]).astype(int)
    picks = rng.integers(0, len(colours), size=n).tolist()
    shapes = rng.integers(0, len(SHAPES), size=n).tolist()
    for (x0, y0), size, (ox, oy), c, s in zip(cells, sizes.tolist(), offsets.tolist(), picks, shapes, strict=True):
        draw_shape(draw, SHAPES[s], x0 + margin + ox, y0 + margin + oy, size, SHAPE_PALETTE[colours[c]])


def random_code(rng: np.random.Generator, pattern: str) -> str:
    """A code following ``pattern`` (``L`` letter, ``D`` digit, anything else literal)."""
    out = []
    for p in pattern:
        if p == "L":
            out.append(CODE_LETTERS[int(rng.integers(len(CODE_LETTERS)))])
        elif p == "D":
            out.append(CODE_DIGITS[int(rng.integers(len(CODE_DIGITS)))])
        else:
            out.append(p)
    return "".join(out)


def spaced_text_width(text: str, size: int, tracking: int = TEXT_TRACKING) -> int:
    """Advance width of ``text`` drawn by :func:`draw_spaced_text`."""
    f = font(size)
    return sum(int(round(f.getlength(ch))) + tracking for ch in text) - tracking


def draw_spaced_text(
    draw: ImageDraw.ImageDraw,
    xy: tuple[int, int],
    text: str,
    size: int,
    fill: RGB | int = (0, 0, 0),
    tracking: int = TEXT_TRACKING,
) -> int:
    """Draw ``text`` one character at a time at integer positions, ``tracking`` px apart.

    Returns the advance width. Characters never touch, which keeps printed codes legible.
    """
    f = font(size)
    x, y = xy
    for ch in text:
        draw.text((x, y), ch, fill=fill, font=f)
        x += int(round(f.getlength(ch))) + tracking
    return x - xy[0] - tracking


def text_tag(text: str, size: int, paper: RGB, pad: int, border: RGB = (40, 40, 40)) -> Image.Image:
    """A small label: ``text`` in black on ``paper``, ``pad`` px of margin and a 1 px border."""
    width = spaced_text_width(text, size) + 4 * size
    scratch = Image.new("RGB", (width, 3 * size), paper)
    draw_spaced_text(ImageDraw.Draw(scratch), (size, size), text, size)
    ink = np.abs(np.asarray(scratch).astype(int) - np.array(paper)).max(axis=2) > 20
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    body = scratch.crop((int(cols[0]) - pad, int(rows[0]) - pad, int(cols[-1]) + 1 + pad, int(rows[-1]) + 1 + pad))
    return ImageOps.expand(body, border=1, fill=border)


def shape_badge(shape: str, colour: RGB, size: int, pad: int, border: RGB = (40, 40, 40)) -> Image.Image:
    """A white square badge with a coloured ``shape`` of ``size`` px centred in it."""
    side = size + 2 * pad
    badge = Image.new("RGB", (side, side), (255, 255, 255))
    draw_shape(ImageDraw.Draw(badge), shape, pad, pad, size, colour)
    return ImageOps.expand(badge, border=1, fill=border)


# -- real photographs -------------------------------------------------------------------------

# scikit-image sample images stored inside the package itself (no pooch download needed).
PHOTO_NAMES: tuple[str, ...] = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "camera",
    "coins",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "moon",
    "grass",
    "gravel",
    "brick",
)


@functools.cache
def photo(name: str) -> Image.Image:
    """A bundled scikit-image photo as RGB, contrast squeezed into [12, 232] (never pure white)."""
    arr = np.asarray(getattr(skimage_data, name)())
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    arr = arr[..., :3].astype(np.float32)
    arr = 12 + arr * (220 / 255)
    return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), "RGB")


def photo_collage(
    rng: np.random.Generator, width: int, height: int, rows: int, cols: int
) -> Image.Image:
    """Tile the canvas with randomly cropped, flipped and upscaled sample photographs.

    The photos are upscaled several times anyway, so the collage is composed at half
    resolution and doubled with nearest-neighbour resampling, which is much cheaper.
    """
    canvas = Image.new("RGB", ((width + 1) // 2, (height + 1) // 2))
    xs = np.linspace(0, canvas.width, cols + 1).round().astype(int)
    ys = np.linspace(0, canvas.height, rows + 1).round().astype(int)
    for r in range(rows):
        for c in range(cols):
            cw, ch = int(xs[c + 1] - xs[c]), int(ys[r + 1] - ys[r])
            src = photo(PHOTO_NAMES[int(rng.integers(len(PHOTO_NAMES)))])
            # Largest crop with the cell's aspect ratio, shrunk a little and moved at random.
            scale = min(src.width / cw, src.height / ch) * rng.uniform(0.7, 1.0)
            pw, ph = max(8, int(cw * scale)), max(8, int(ch * scale))
            px = int(rng.integers(0, src.width - pw + 1))
            py = int(rng.integers(0, src.height - ph + 1))
            piece = src.crop((px, py, px + pw, py + ph))
            if rng.random() < 0.5:
                piece = ImageOps.mirror(piece)
            canvas.paste(piece.resize((cw, ch), Image.Resampling.BILINEAR), (int(xs[c]), int(ys[r])))
    return canvas.resize((width, height), Image.Resampling.NEAREST)
