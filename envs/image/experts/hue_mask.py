# Expert helper (runs in the restricted runtime): pixels of one named colour, and the long
# axis of a set of pixels. Used by the measurement expert.
import numpy as np

HUES = {"red": 0, "orange": 31, "yellow": 54, "green": 130, "cyan": 183, "blue": 228, "purple": 273, "magenta": 318}


def colour_mask(arr, name, tolerance=10):
    """Saturated pixels whose hue is within `tolerance` degrees of the named colour."""
    high = np.maximum(np.maximum(arr[:, :, 0], arr[:, :, 1]), arr[:, :, 2])
    low = np.minimum(np.minimum(arr[:, :, 0], arr[:, :, 1]), arr[:, :, 2])
    saturated = (high - low) > 80
    px = arr[saturated].astype(float)  # only the saturated pixels need a hue
    r, g, b = px[:, 0], px[:, 1], px[:, 2]
    top, spread = px.max(axis=1), px.max(axis=1) - px.min(axis=1)
    hue = 60 * np.where(top == r, ((g - b) / spread) % 6, np.where(top == g, (b - r) / spread + 2, (r - g) / spread + 4))
    gap = np.abs(hue - HUES[name]) % 360
    mask = np.zeros(saturated.shape, dtype=bool)
    mask[saturated] = np.minimum(gap, 360 - gap) < tolerance
    return mask


def principal_axis(mask):
    """Centre and unit direction (x, y) of the long axis of the mask's pixels."""
    ys, xs = np.nonzero(mask)
    pts = np.stack([xs, ys], axis=1).astype(float)
    centre = pts.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov((pts - centre).T))
    return centre, vectors[:, int(np.argmax(values))], pts
