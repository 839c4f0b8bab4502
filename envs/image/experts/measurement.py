# Expert for measurement (helper: hue_mask).
# Parameters: KIND ("length", "angle" or "area"), COLOURS (the colours the question names:
# the segment's, the two lines', or the shape's).

# %% turn
from scipy import ndimage

arr = np.asarray(image)
print(f"image {image.width}x{image.height}")

# %% turn
if KIND == "length":
    mask = colour_mask(arr, COLOURS[0])
    centre, direction, pts = principal_axis(mask)
    along = (pts - centre) @ direction
    print(f"{int(mask.sum())} {COLOURS[0]} pixels; segment runs along direction {direction.round(3)}")
    print(round(float(along.max() - along.min()), 1))
elif KIND == "angle":
    directions = []
    for name in COLOURS:
        centre, direction, pts = principal_axis(colour_mask(arr, name))
        directions.append(direction)
        print(f"{name} line direction: {direction.round(4)}")
    cosine = abs(float(directions[0] @ directions[1]))
    print(round(float(np.degrees(np.arccos(min(1.0, cosine)))), 1))
else:
    mask = colour_mask(arr, COLOURS[0])
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    sizes = np.bincount(labels.ravel())
    print(f"{count} {COLOURS[0]} regions, pixel counts {sorted(sizes[1:].tolist(), reverse=True)[:5]}")
    print(int(sizes[1:].max()))
