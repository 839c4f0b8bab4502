# Expert for real_photo_search (helpers: white_tag with ocr_tools for a code tag, with
# blob_tools for a shape badge).
# Parameters: ASK ("code", "colour" or "shape"), ALPHABET (the characters a code may hold),
# OPTIONS (the answer options in order; empty for a code).

# %% turn
inside = find_white_patch(image)

# %% turn
if ASK == "code":
    print(read_tag(inside, ALPHABET))
else:
    blobs = describe_blobs(np.asarray(inside), min_pixels=20)
    mark = max(blobs, key=lambda b: b["pixels"])
    print(f"on the badge: a {mark['colour']} {mark['shape']} of {mark['size']} px")
    value = mark["colour"] if ASK == "colour" else mark["shape"]
    if value not in OPTIONS:
        value = colour_name(np.median(np.asarray(inside).reshape(-1, 3), axis=0), OPTIONS) if ASK == "colour" else OPTIONS[0]
    print("ABCDEFGH"[OPTIONS.index(value)])
