# Expert helper (runs in the restricted runtime, after ocr_tools): find the one pure-white tag
# or badge in a large picture, and read the code printed on a tag.
import numpy as np
from scipy import ndimage


def find_white_patch(picture):
    """The inside (within its dark border) of the largest pure-white patch of the picture."""
    # Nothing else in the picture is pure white: find the white patch on a reduced copy.
    factor = max(1, min(3, picture.width // 1500))
    small = np.asarray(picture.reduce(factor))
    darkest = np.minimum(np.minimum(small[:, :, 0], small[:, :, 1]), small[:, :, 2])
    labels, count = ndimage.label(darkest >= 250, structure=np.ones((3, 3), dtype=bool))
    sizes = np.bincount(labels.ravel())
    best = int(np.argmax(sizes[1:])) + 1
    ys, xs = np.nonzero(labels == best)
    pad = 2 * factor + 4
    left, top = int(xs.min()) * factor - pad, int(ys.min()) * factor - pad
    right, bottom = (int(xs.max()) + 1) * factor + pad, (int(ys.max()) + 1) * factor + pad
    print(f"image {picture.width}x{picture.height}: {count} white patches, the largest spans x {left}-{right}, y {top}-{bottom}")
    patch = picture.crop((left, top, right, bottom))
    white = np.asarray(patch).min(axis=2) >= 250
    rows = np.nonzero(white.any(axis=1))[0]
    cols = np.nonzero(white.any(axis=0))[0]
    inside = patch.crop((int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1))
    print(f"white area inside the border: {inside.width}x{inside.height} px")
    return inside


def read_tag(inside, alphabet):
    """The code read off the tag (after printing how many characters it holds)."""
    ink = darkness(inside)
    text = read_line(ink, alphabet)
    print(f"{len(split_glyphs(ink))} characters on the tag")
    return text
