# Which shape moves fastest? Measure each one's step over one second at random moments.
# Parameters: OPTIONS. Helpers: blobs.py.

# %% turn
import math

n = len(video)
fps = video.fps
print(video)
print("frame 0:", [(b["colour"], b["shape"], b["x"], b["y"]) for b in find_blobs(video[0])])

# %% turn
# Positions one second apart at two dozen random moments. A bounce inside the gap only
# shortens the measured step, so use an upper percentile rather than the mean.
gap = max(1, int(round(fps)))
starts = sorted({int(x) for x in np.random.default_rng(0).integers(0, n - gap, 24)})
frames = sorted(set(starts) | {i + gap for i in starts})
blobs = {i: find_blobs(f) for i, f in zip(frames, video.get_batch(frames), strict=True)}


def centre(i, colour):
    hits = [b for b in blobs[i] if b["colour"] == colour]
    return max(hits, key=lambda d: d["area"]) if hits else None


speeds = {}
for opt in OPTIONS:
    colour = opt.split(" ")[0]
    steps = []
    for i in starts:
        p, q = centre(i, colour), centre(i + gap, colour)
        if p and q:
            steps.append(math.hypot(q["x"] - p["x"], q["y"] - p["y"]))
    speeds[opt] = float(np.percentile(steps, 75)) * fps / gap
    print(f"{opt}: about {speeds[opt]:.1f} px/s ({len(steps)} measurements)")
best = max(OPTIONS, key=lambda o: speeds[o])
print("ABCDEFGH"[OPTIONS.index(best)])
