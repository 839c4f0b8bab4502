# When does the COLOUR SHAPE appear? It stays once it has appeared: bisect over frames.
# Parameters: COLOUR, SHAPE. Helpers: blobs.py.

# %% turn
n = len(video)
fps = video.fps
print(video)


def present(i):
    return any(b["colour"] == COLOUR and b["shape"] == SHAPE for b in find_blobs(video[i]))


print("first frame:", [(b["colour"], b["shape"]) for b in find_blobs(video[0])])
print("last frame:", [(b["colour"], b["shape"]) for b in find_blobs(video[n - 1])])
print("target visible at start/end:", present(0), present(n - 1))

# %% turn
# It stays once it has appeared, so "visible at frame i" is monotone: bisect.
lo, hi = 0, n - 1
checked = 0
while hi - lo > 1:
    mid = (lo + hi) // 2
    checked += 1
    if present(mid):
        hi = mid
    else:
        lo = mid
print(f"absent at frame {lo}, visible from frame {hi} ({checked} frames checked)")
print(round(hi / fps, 2))
