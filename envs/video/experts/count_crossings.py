# How many (COLOUR, or any when None) balls cross the white line? Find the line in frame 0,
# then stack a thin strip around it over every frame: each crossing is one blob in (time, y).
# Parameters: COLOUR (None: any colour). Helpers: blobs.py.

# %% turn
n = len(video)
fps = video.fps
print(video)
first = np.asarray(video[0])
white = first.min(axis=-1) > 200
cols = np.nonzero(white.sum(axis=0) > 0.6 * first.shape[0])[0]
xa, xb = int(cols.min()), int(cols.max())
print("white line at columns", xa, "-", xb)

# %% turn
# A thin strip around the line, for every frame: each crossing ball is one blob in (time, y).
rows = []
for start in range(0, n, 200):
    batch = video.get_batch(range(start, min(n, start + 200)))
    lab = colour_labels(batch[:, :, xa - 8:xb + 9])
    hit = (lab >= 0) if COLOUR is None else (lab == NAMES.index(COLOUR))
    rows.append(hit.any(axis=2))
timeline = np.concatenate(rows, axis=0)
comp, count = ndimage.label(timeline)
sizes = ndimage.sum(timeline, comp, range(1, count + 1))
crossings = [int(s) for s in sizes if s >= 20]
print("blobs on the line (pixels):", crossings)
print(len(crossings))
