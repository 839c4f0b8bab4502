# Expert helper (runs in the restricted runtime): find saturated blobs and name their colour
# and shape. Used by the search, counting, spatial and photo-badge experts.
import colorsys

import numpy as np
from scipy import ndimage

# Reference hue (degrees) of each colour name used by the questions.
HUES = {"red": 0, "orange": 31, "yellow": 54, "green": 130, "cyan": 183, "blue": 228, "purple": 273, "magenta": 318}
EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity for ndimage.label


def colour_name(rgb, choices=None):
    """Name an RGB colour by the nearest reference hue (optionally only among `choices`)."""
    hue = colorsys.rgb_to_hsv(rgb[0] / 255, rgb[1] / 255, rgb[2] / 255)[0] * 360
    names = list(HUES) if choices is None else list(choices)

    def hue_gap(name):
        gap = abs(hue - HUES[name]) % 360
        return min(gap, 360 - gap)

    return min(names, key=hue_gap)


def shape_name(mask):
    """Circle, square, triangle or diamond, from how much of its bounding box a blob fills."""
    rows = np.nonzero(mask.any(axis=1))[0]
    cols = np.nonzero(mask.any(axis=0))[0]
    blob = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    fill = blob.mean()
    if fill > 0.9:
        return "square"
    if fill > 0.68:
        return "circle"
    # Triangles (apex up) are wide at the bottom and narrow at the top; diamonds are symmetric.
    third = max(1, blob.shape[0] // 3)
    widths = blob.sum(axis=1)
    if widths[-third:].mean() > 1.8 * widths[:third].mean():
        return "triangle"
    return "diamond"


def spread(arr):
    """Per-pixel max minus min of the RGB channels: a cheap saturation measure (uint8 safe)."""
    r, g, b = arr[:, :, 0], arr[:, :, 1], arr[:, :, 2]
    return np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)


def describe_blobs(arr, min_saturation=90, min_pixels=20):
    """Connected saturated blobs of an RGB array: colour, shape, size, centre, box."""
    labels, count = ndimage.label(spread(arr) > min_saturation, structure=EIGHT)
    blobs = []
    for index, box in enumerate(ndimage.find_objects(labels)):
        mask = labels[box] == index + 1
        if mask.sum() < min_pixels:
            continue
        height, width = mask.shape
        rgb = np.median(arr[box][mask], axis=0)
        blobs.append({
            "colour": colour_name(rgb),
            "rgb": rgb,
            "shape": shape_name(mask),
            "fill": float(mask.mean()),
            "pixels": int(mask.sum()),
            "size": max(height, width),
            "x": box[1].start + (width - 1) / 2,  # centre of the bounding box
            "y": box[0].start + (height - 1) / 2,
            "box": (box[1].start, box[0].start, box[1].stop, box[0].stop),
            "touches_edge": box[0].start == 0 or box[1].start == 0
            or box[0].stop == arr.shape[0] or box[1].stop == arr.shape[1],
        })
    return blobs
