# What colour is SHAPE_A when SHAPE_B first turns EVENT? Each shape keeps to its own
# horizontal band: scan SHAPE_B's band coarsely (colours last at least MIN_LAST s), then
# bisect to the exact frame and read SHAPE_A's band there.
# Parameters: SHAPE_A, SHAPE_B, EVENT, MIN_LAST, OPTIONS. Helpers: blobs.py.

# %% turn
n = len(video)
fps = video.fps
print(video)
blobs = find_blobs(video[0])
print("frame 0:", [(b["colour"], b["shape"], b["box"]) for b in blobs])
# each shape keeps to its own horizontal band: remember the rows it occupies
band = {}
for b in blobs:
    band[b["shape"]] = (max(0, b["box"][1] - 4), b["box"][3] + 4)
print("bands:", band)


def colours_in_band(frames, shape):
    y0, y1 = band[shape]
    lab = colour_labels(np.asarray(frames)[:, y0:y1])
    counts = np.stack([(lab == k).sum(axis=(1, 2)) for k in range(len(NAMES))], axis=1)
    return [NAMES[int(c.argmax())] if c.max() > 30 else None for c in counts]


# coarse scan of that shape's band: colours last at least MIN_LAST s, so sample at half that
samples = list(range(0, n, max(1, int(MIN_LAST * fps / 2))))
seen = colours_in_band(video.get_batch(samples), SHAPE_B)
hit = seen.index(EVENT)
print("the", SHAPE_B, "is first seen", EVENT, "at sample frame", samples[hit], "; before that:", seen[hit - 1])

# %% turn
lo, hi = samples[hit - 1], samples[hit]
while hi - lo > 1:
    mid = (lo + hi) // 2
    if colours_in_band([video[mid]], SHAPE_B)[0] == EVENT:
        hi = mid
    else:
        lo = mid
colour = colours_in_band([video[hi]], SHAPE_A)[0]
print(f"the {SHAPE_B} turns {EVENT} at frame {hi} (t = {hi / fps:.2f} s); the {SHAPE_A} is then {colour}")
if colour not in OPTIONS:
    colour = min(OPTIONS, key=lambda c: abs((HUES[c] - HUES[colour] + 180) % 360 - 180))
print("ABCDEFGH"[OPTIONS.index(colour)])
