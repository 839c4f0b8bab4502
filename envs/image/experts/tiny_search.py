# Expert helper (runs in the restricted runtime, after blob_tools): find the tiny shapes on a
# huge canvas. Scan a reduced copy for small saturated blobs, then look at each at full size.


def scan_for_tiny_blobs(picture):
    """Coarse scan: the reduction factor and the boxes (in reduced pixels) of the tiny blobs."""
    # The picture is huge: scan a reduced copy for saturated blobs and keep the tiny ones.
    factor = max(1, min(4, picture.width // 1200))
    small = np.asarray(picture.reduce(factor))
    labels, count = ndimage.label(spread(small) > 50, structure=EIGHT)
    tiny = []
    for box in ndimage.find_objects(labels):
        height, width = box[0].stop - box[0].start, box[1].stop - box[1].start
        if max(height, width) * factor <= 28:  # the ordinary shapes are 40 px and larger
            tiny.append({"box": (box[1].start, box[0].start, box[1].stop, box[0].stop)})
    print(f"image {picture.width}x{picture.height}, reduced {factor}x to {small.shape[1]}x{small.shape[0]}")
    print(f"{count} coloured blobs, {len(tiny)} of them tiny")
    return factor, tiny


def zoom(picture, factor, blob, pad=16):
    """Look at a coarse blob at full resolution; None if it is part of a bigger object."""
    x0, y0, x1, y1 = blob["box"]
    left, top = x0 * factor - pad, y0 * factor - pad
    crop = np.asarray(picture.crop((left, top, x1 * factor + pad, y1 * factor + pad)))
    found = [b for b in describe_blobs(crop, min_pixels=30) if not b["touches_edge"] and b["size"] <= 24]
    if not found:
        return None
    best = max(found, key=lambda b: b["pixels"])
    best["x"] = best["x"] + left
    best["y"] = best["y"] + top
    return best


def zoom_on_tiny_blobs(picture, factor, tiny):
    """The tiny objects (colour, shape, size, centre in full-size pixels), each listed once."""
    objects = []
    for blob in tiny:
        obj = zoom(picture, factor, blob)
        # Skip a second coarse fragment of an object that is already on the list.
        if obj is not None and all(abs(obj["x"] - o["x"]) + abs(obj["y"] - o["y"]) > 10 for o in objects):
            objects.append(obj)
    for obj in objects:
        print(f"tiny {obj['colour']} {obj['shape']} ({obj['size']} px) at x={obj['x']:.0f}, y={obj['y']:.0f}")
    return objects
