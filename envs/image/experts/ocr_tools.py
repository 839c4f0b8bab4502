# Expert helper (runs in the restricted runtime): read printed text by matching each glyph
# with renderings of Pillow's default font. Used by the chart, tag and photo experts.
import numpy as np
from PIL import Image, ImageDraw


def darkness(pil_crop):
    """Ink darkness 0..255 of an image crop (255 minus its grey level)."""
    return 255 - np.asarray(pil_crop.convert("L")).astype(int)


def tight(ink, level=60):
    """Crop an ink array to the box of its clearly inked pixels."""
    rows = np.nonzero((ink > level).any(axis=1))[0]
    cols = np.nonzero((ink > level).any(axis=0))[0]
    if len(rows) == 0:
        return ink[:0, :0]
    return ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


rendered = {}


def render(text, size):
    """Ink of `text` drawn with Pillow's default font at `size` px, cropped tight (cached)."""
    key = (text, size)
    if key not in rendered:
        canvas = Image.new("L", (size * (len(text) + 4), size * 3), 255)
        ImageDraw.Draw(canvas).text((size, size), text, fill=0, font_size=size)
        rendered[key] = tight(255 - np.asarray(canvas).astype(int))
    return rendered[key]


def difference(a, b):
    """Mean absolute ink difference of two tight crops, plus a penalty per pixel of size mismatch."""
    if a.size == 0 or b.size == 0 or abs(a.shape[0] - b.shape[0]) > 1 or abs(a.shape[1] - b.shape[1]) > 1:
        return 1e9
    height, width = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    mismatch = abs(a.shape[0] - b.shape[0]) + abs(a.shape[1] - b.shape[1])
    return float(np.abs(a[:height, :width] - b[:height, :width]).mean()) + 40 * mismatch


def split_glyphs(ink, level=60):
    """Column spans of the separate characters of one line of text."""
    filled = (ink > level).any(axis=0)
    spans, start = [], None
    for col, on in enumerate(filled):
        if on and start is None:
            start = col
        if not on and start is not None:
            spans.append((start, col))
            start = None
    if start is not None:
        spans.append((start, len(filled)))
    return spans


def read_line(ink, alphabet):
    """OCR a line of spaced characters by matching each glyph with default-font renderings."""
    glyphs = [tight(ink[:, a:b]) for a, b in split_glyphs(ink)]
    heights = sorted(g.shape[0] for g in glyphs)
    cap = heights[len(heights) // 2]
    # Capitals and digits are about 2/3 of the font size tall: try the font sizes whose "H"
    # has that height, best fitting first, and stop once every glyph matches (almost) exactly.
    sizes = [s for s in range(max(6, int(cap * 1.2)), int(cap * 1.8) + 2) if abs(render("H", s).shape[0] - cap) <= 1]
    sizes.sort(key=lambda s: abs(render("H", s).shape[0] - cap))
    best_text, best_score = "", float("inf")
    for size in sizes:
        templates = {ch: render(ch, size) for ch in alphabet}
        text, score = "", 0.0
        for glyph in glyphs:
            ch = min(templates, key=lambda c: difference(glyph, templates[c]))
            text = text + ch
            score = score + difference(glyph, templates[ch])
        if score < best_score:
            best_text, best_score = text, score
        if best_score < 2 * len(glyphs):
            break
    return best_text
