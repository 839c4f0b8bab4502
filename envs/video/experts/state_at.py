# What colour is the SHAPE at T seconds? Look at that one frame.
# Parameters: SHAPE, T, OPTIONS. Helpers: blobs.py.

# %% turn
n = len(video)
fps = video.fps
print(video)
i = min(n - 1, int(round(T * fps)))
blobs = find_blobs(video[i])
print(f"frame {i} (t = {i / fps:.2f} s):", [(b["colour"], b["shape"], b["x"], b["y"]) for b in blobs])

# %% turn
match = [b for b in blobs if b["shape"] == SHAPE]
colour = max(match, key=lambda b: b["area"])["colour"] if match else blobs[0]["colour"]
if colour not in OPTIONS:  # fall back to the option with the nearest hue
    colour = min(OPTIONS, key=lambda c: abs((HUES[c] - HUES[colour] + 180) % 360 - 180))
print("the", SHAPE, "is", colour)
print("ABCDEFGH"[OPTIONS.index(colour)])
