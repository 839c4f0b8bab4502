# When does the centre of the COLOUR ball enter the white zone? Find the zone in frame 0,
# then bisect: once inside, the ball stays inside.
# Parameters: COLOUR. Helpers: blobs.py.

# %% turn
n = len(video)
fps = video.fps
print(video)
first = np.asarray(video[0])
white = first.min(axis=-1) > 200
cols = np.nonzero(white.sum(axis=0) > 0.5 * white.sum(axis=0).max())[0]
rows = np.nonzero(white.sum(axis=1) > 0.5 * white.sum(axis=1).max())[0]
mx, my = (cols.min() + cols.max()) / 2, (rows.min() + rows.max()) / 2
# interior of the zone: between the left/right and top/bottom outline strokes
zx0, zx1 = cols[cols < mx].max() + 1, cols[cols > mx].min() - 1
zy0, zy1 = rows[rows < my].max() + 1, rows[rows > my].min() - 1
print("zone interior x", zx0, "-", zx1, " y", zy0, "-", zy1)


def ball_centre(i):
    blobs = [b for b in find_blobs(video[i]) if b["colour"] == COLOUR]
    if not blobs:
        return None
    b = max(blobs, key=lambda d: d["area"])
    return (b["x"], b["y"])


def inside(i):
    c = ball_centre(i)
    return c is not None and zx0 - 0.5 < c[0] < zx1 + 0.5 and zy0 - 0.5 < c[1] < zy1 + 0.5


print("ball centre at start:", ball_centre(0), " at end:", ball_centre(n - 1))
print("inside at start/end:", inside(0), inside(n - 1))

# %% turn
# After entering it stays inside, so "inside at frame i" is monotone: bisect.
lo, hi = 0, n - 1
while hi - lo > 1:
    mid = (lo + hi) // 2
    if inside(mid):
        hi = mid
    else:
        lo = mid
print(f"centre outside at frame {lo} {ball_centre(lo)}, inside at frame {hi} {ball_centre(hi)}")
print(round(hi / fps, 2))
