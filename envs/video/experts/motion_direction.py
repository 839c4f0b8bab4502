# In which direction does the COLOUR SHAPE move (between T1 and T2 s, or over the whole
# video)? Track its centre at five frames and take the angle of the displacement.
# Parameters: COLOUR, SHAPE, T1, T2 (None: the whole video), OPTIONS. Helpers: blobs.py.

# %% turn
import math

n = len(video)
fps = video.fps
print(video)
i1 = 0 if T1 is None else min(n - 1, int(round(T1 * fps)))
i2 = n - 1 if T2 is None else min(n - 1, int(round(T2 * fps)))
track = []
for i in np.linspace(i1, i2, 5).round().astype(int):
    hits = [b for b in find_blobs(video[int(i)]) if b["colour"] == COLOUR]
    if hits:
        b = max(hits, key=lambda d: d["area"])
        track.append((int(i), b["x"], b["y"]))
print("positions (frame, x, y):", track)

# %% turn
dx = track[-1][1] - track[0][1]
dy = track[-1][2] - track[0][2]
angle = math.degrees(math.atan2(-dy, dx)) % 360  # image y grows downwards
names = ["right", "up-right", "up", "up-left", "left", "down-left", "down", "down-right"]
print(f"displacement ({dx:.0f}, {dy:.0f}) px, angle {angle:.1f} deg")
best = min(OPTIONS, key=lambda o: abs((names.index(o) * 45 - angle + 180) % 360 - 180))
print("ABCDEFGH"[OPTIONS.index(best)])
