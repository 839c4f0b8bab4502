# In which order do the colours first appear? Every appearance lasts at least MIN_VISIBLE s:
# sample twice as often, then resolve ties frame by frame.
# Parameters: OPTIONS, MIN_VISIBLE. Helpers: blobs.py.

# %% turn
n = len(video)
fps = video.fps
print(video)
colours = sorted({c for opt in OPTIONS for c in opt.split(" → ")})
# every appearance lasts at least MIN_VISIBLE s, so sampling twice as often misses none
step = max(1, int(MIN_VISIBLE * fps / 2))
samples = list(range(0, n, step))
first_seen = {}
for start in range(0, len(samples), 64):
    chunk = samples[start:start + 64]
    lab = colour_labels(video.get_batch(chunk)[:, ::2, ::2])
    for c in colours:
        present = (lab == NAMES.index(c)).sum(axis=(1, 2)) >= 12
        for i, p in zip(chunk, present, strict=True):
            if p and c not in first_seen:
                first_seen[c] = i
print(f"sampled {len(samples)} frames every {step / fps:.2f} s; first seen at frame:", first_seen)

# %% turn
# colours first seen in the same sample: find their exact first frames
exact = dict(first_seen)
for c, i in first_seen.items():
    same = [d for d in first_seen if first_seen[d] == i]
    if len(same) > 1:
        frames = list(range(max(0, i - step + 1), i + 1))
        lab = colour_labels(video.get_batch(frames)[:, ::2, ::2])
        present = (lab == NAMES.index(c)).sum(axis=(1, 2)) >= 12
        exact[c] = frames[int(np.argmax(present))]
order = sorted(exact, key=lambda c: exact[c])
print("order of first appearance:", order, {c: round(exact[c] / fps, 2) for c in order})
seq = " → ".join(order)
print("ABCDEFGH"[OPTIONS.index(seq)] if seq in OPTIONS else "A")
