# Expert for spatial_relation (helper: blob_tools).
# Parameters: ASK ("inside", "closest" or "farthest"), FRAME_COLOUR (for "inside"), REF (the
# reference object's name otherwise), OPTIONS (the answer options, in order).

# %% turn
arr = np.asarray(image)
blobs = describe_blobs(arr, min_pixels=40)
# Frames are hollow outlines (they fill little of their box); everything else is an object.
frames = [b for b in blobs if b["fill"] < 0.35 and b["size"] > 100]
objects = [b for b in blobs if b not in frames]
for b in objects:
    b["name"] = f"{b['colour']} {b['shape']}"
    print(f"{b['name']} at ({b['x']:.0f}, {b['y']:.0f})")
for f in frames:
    print(f"{f['colour']} frame spanning {f['box']}")

# %% turn
if ASK == "inside":
    frame = [f for f in frames if f["colour"] == FRAME_COLOUR][0]
    x0, y0, x1, y1 = frame["box"]
    inside = [b for b in objects if x0 < b["x"] < x1 and y0 < b["y"] < y1]
    print("inside the frame:", [b["name"] for b in inside])
    answer = inside[0]["name"] if inside else OPTIONS[0]
    print("ABCDEFGH"[OPTIONS.index(answer)] if answer in OPTIONS else "A")
else:
    ref = [b for b in objects if b["name"] == REF][0]
    candidates = [b for b in objects if b["name"] in OPTIONS]
    for b in candidates:
        b["distance"] = float(np.hypot(b["x"] - ref["x"], b["y"] - ref["y"]))
        print(f"{b['name']}: {b['distance']:.1f} px from the {ref['name']}")
    best = (min if ASK == "closest" else max)(candidates, key=lambda b: b["distance"])
    print("ABCDEFGH"[OPTIONS.index(best["name"])])
