# How many distinct shapes appear? Every appearance lasts at least MIN_VISIBLE s: sample
# twice as often and collect the (colour, shape) pairs seen.
# Parameters: MIN_VISIBLE. Helpers: blobs.py.

# %% turn
n = len(video)
fps = video.fps
print(video)
step = max(1, int(MIN_VISIBLE * fps / 2))  # no appearance can slip between two samples
samples = list(range(0, n, step))
seen = {}
for start in range(0, len(samples), 64):
    chunk = samples[start:start + 64]
    for i, frame in zip(chunk, video.get_batch(chunk), strict=True):
        for b in find_blobs(frame):
            seen.setdefault((b["colour"], b["shape"]), []).append(i)
for key, frames in sorted(seen.items()):
    print(key, "seen in", len(frames), "samples, first at", round(frames[0] / fps, 1), "s")

# %% turn
print(len(seen))
