# Expert for visual_search_attribute (helpers: blob_tools, tiny_search).
# Parameters: ASK ("colour" or "shape": what the question asks), KNOWN (the shape or colour
# the question names), OPTIONS (the answer options, in order).

# %% turn
factor, tiny = scan_for_tiny_blobs(image)

# %% turn
objects = zoom_on_tiny_blobs(image, factor, tiny)
if ASK == "colour":
    matches = [o for o in objects if o["shape"] == KNOWN]
    target = matches[0] if matches else objects[0]
    value = colour_name(target["rgb"], OPTIONS)
    print(f"the tiny {target['shape']} at ({target['x']:.0f}, {target['y']:.0f}) is {target['colour']}; closest option: {value}")
else:
    matches = [o for o in objects if o["colour"] == KNOWN]
    target = matches[0] if matches else objects[0]
    value = target["shape"] if target["shape"] in OPTIONS else OPTIONS[0]
    print(f"the tiny {target['colour']} object at ({target['x']:.0f}, {target['y']:.0f}) is a {target['shape']}")
print("ABCDEFGH"[OPTIONS.index(value)])
