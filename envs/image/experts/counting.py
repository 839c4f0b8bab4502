# Expert for counting (helper: blob_tools).
# Parameters: COLOUR and SHAPE (the kind of shape to count).

# %% turn
import collections

arr = np.asarray(image)
blobs = describe_blobs(arr, min_pixels=40)
kinds = collections.Counter(f"{b['colour']} {b['shape']}" for b in blobs)
print(f"{len(blobs)} coloured shapes:", dict(kinds))

# %% turn
wanted = [b for b in blobs if b["colour"] == COLOUR and b["shape"] == SHAPE]
for b in wanted:
    print(f"{b['colour']} {b['shape']} at ({b['x']:.0f}, {b['y']:.0f}), {b['size']} px")
print(len(wanted))
