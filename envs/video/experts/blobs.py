# Shared expert helpers (prepended to the first turn): name the colour of saturated pixels
# and find coloured blobs with their shape, centre, box and area.
import numpy as np
from scipy import ndimage

# Hue (degrees) of the named colours; saturated pixels get the nearest one.
HUES = {"red": 0, "orange": 31, "yellow": 55, "green": 128, "cyan": 186, "blue": 228, "magenta": 302}
NAMES = list(HUES)
CENTRES = np.array([HUES[n] for n in NAMES], dtype=np.float32)
# nearest named colour for every whole degree of hue
HUE_TABLE = np.abs((np.arange(360)[:, None] - CENTRES + 180.0) % 360.0 - 180.0).argmin(axis=1)


def colour_labels(img, min_sat=70, min_val=110):
    """Index into NAMES of the nearest hue for bright saturated pixels, -1 elsewhere (frames or batches).

    Dim pixels are left out: the dark fringe of an orange shape has a reddish hue."""
    f = np.asarray(img, dtype=np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    mx = np.maximum(np.maximum(r, g), b)
    sat = mx - np.minimum(np.minimum(r, g), b)
    d = np.maximum(sat, 1.0)
    hue = np.where(mx == r, ((g - b) / d) % 6.0, np.where(mx == g, (b - r) / d + 2.0, (r - g) / d + 4.0))
    lab = HUE_TABLE[(hue * 60.0).astype(np.int32) % 360]
    return np.where((sat >= min_sat) & (mx >= min_val), lab, -1)


def shape_of(mask):
    """Square, circle or upward triangle from a blob's cropped boolean mask."""
    h, w = mask.shape
    q = max(1, h // 4)
    top = mask[:q].sum(axis=1).mean()
    bottom = max(mask[-q:].sum(axis=1).mean(), 1.0)
    if top < 0.6 * bottom:
        return "triangle"
    k = max(2, min(h, w) // 6)
    corners = (mask[:k, :k].mean() + mask[:k, -k:].mean() + mask[-k:, :k].mean() + mask[-k:, -k:].mean()) / 4
    return "square" if corners > 0.5 else "circle"


def find_blobs(img, min_area=40):
    """Saturated connected regions: colour, shape, centre x/y, box (x0, y0, x1, y1), area."""
    lab = colour_labels(img)
    counts = np.bincount(lab[lab >= 0].ravel(), minlength=len(NAMES))
    found = []
    for k in range(len(NAMES)):
        if counts[k] < min_area:
            continue
        mask = lab == k
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        oy, ox = int(rows[0]), int(cols[0])
        crop = mask[oy:rows[-1] + 1, ox:cols[-1] + 1]
        clean = ndimage.binary_opening(crop, structure=np.ones((3, 3), dtype=bool))
        comp, n = ndimage.label(clean)
        boxes = ndimage.find_objects(comp)
        for j in range(n):
            ys, xs = boxes[j]
            blob = comp[ys, xs] == j + 1
            area = int(blob.sum())
            if area < min_area:
                continue
            x0, y0, x1, y1 = ox + xs.start, oy + ys.start, ox + xs.stop, oy + ys.stop
            found.append({
                "colour": NAMES[k], "shape": shape_of(blob),
                "x": (x0 + x1 - 1) / 2, "y": (y0 + y1 - 1) / 2,
                "box": (x0, y0, x1, y1), "area": area,
            })
    return found
