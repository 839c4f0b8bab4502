# How many times does the lamp that lights up COLOUR flash? Find the lamps (dark discs) in
# frame 0, then read every frame's colour in a small patch per lamp.
# Parameters: COLOUR. Helpers: blobs.py.

# %% turn
n = len(video)
fps = video.fps
print(video)
first = np.asarray(video[0]).astype(np.int16)
level = np.median(first.max(axis=-1))
grey = (first.max(axis=-1) - first.min(axis=-1) < 30) & (first.max(axis=-1) > level + 35)
comp, count = ndimage.label(grey)
lamps = []
for sl in ndimage.find_objects(comp):
    if sl[0].stop - sl[0].start >= 12:
        lamps.append(((sl[1].start + sl[1].stop - 1) // 2, (sl[0].start + sl[0].stop - 1) // 2))
print("lamps (dark at the start) at", lamps)

# %% turn
# Every frame matters for counting: read them all in chunks, keep only a patch per lamp.
states = {p: [] for p in lamps}
for start in range(0, n, 200):
    batch = video.get_batch(range(start, min(n, start + 200)))
    for p in lamps:
        x, y = p
        patch = batch[:, y - 3:y + 4, x - 3:x + 4].reshape(len(batch), -1, 3).mean(axis=1)
        states[p].extend(colour_labels(patch).tolist())
target = NAMES.index(COLOUR)
answer = 0
for p in lamps:
    on = [s == target for s in states[p]]
    flashes = sum(1 for i in range(n) if on[i] and (i == 0 or not on[i - 1]))
    print("lamp", p, "lit", COLOUR, "in", sum(on), "frames,", flashes, "flashes")
    answer = max(answer, flashes)
print(answer)
