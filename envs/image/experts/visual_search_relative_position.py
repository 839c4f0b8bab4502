# Expert for visual_search_relative_position (helpers: blob_tools, tiny_search).
# Parameters: A_COLOUR, A_SHAPE (the object asked about), B_COLOUR, B_SHAPE (the reference),
# OPTIONS (the directions, in order).

# %% turn
factor, tiny = scan_for_tiny_blobs(image)

# %% turn
objects = zoom_on_tiny_blobs(image, factor, tiny)


def find(colour, shape):
    """The tiny object of the named colour (the colour is unique among the tiny ones)."""
    same = [o for o in objects if o["colour"] == colour]
    exact = [o for o in same if o["shape"] == shape]
    return (exact or same or objects)[0]


a = find(A_COLOUR, A_SHAPE)
b = find(B_COLOUR, B_SHAPE)
dx, dy = a["x"] - b["x"], a["y"] - b["y"]
print(f"displacement of the first from the second: dx={dx:.0f}, dy={dy:.0f} (y grows downwards)")
if abs(dx) >= abs(dy):
    relation = "left" if dx < 0 else "right"
else:
    relation = "above" if dy < 0 else "below"
print("ABCDEFGH"[OPTIONS.index(relation)])
