# Expert for chart_reading (helper: ocr_tools).
# Parameters: BAR (a bar chart, else a line chart with one marker per category), ASK
# ("value", "difference", "highest" or "lowest"), NAMES (the category named by a "value"
# question, the two of a "difference" question, or the options of a highest/lowest one).

# %% turn
import numpy as np
from scipy import ndimage

arr = np.asarray(image)
high = np.maximum(np.maximum(arr[:, :, 0], arr[:, :, 1]), arr[:, :, 2])
low = np.minimum(np.minimum(arr[:, :, 0], arr[:, :, 1]), arr[:, :, 2])
dark = high < 90
# The x-axis is the darkest long row, the y-axis the darkest long column.
row_counts, col_counts = dark.sum(axis=1), dark.sum(axis=0)
baseline = int(np.nonzero(row_counts >= 0.9 * row_counts.max())[0].min())
axis_x = int(np.nonzero(col_counts >= 0.9 * col_counts.max())[0].min())
# Gridlines: rows of light grey pixels across the plot.
light = (low >= 205) & (high <= 240) & (high - low < 6)
light_counts = light[:, axis_x + 3:].sum(axis=1)
grid_rows = [int(r) for r in np.nonzero(light_counts > 0.2 * (arr.shape[1] - axis_x))[0] if r < baseline]
print(f"x-axis at row {baseline}, y-axis at column {axis_x}, gridlines at rows {grid_rows}")
top_row = min(grid_rows) - 12  # the title above the plot is not data
marks = []
if BAR:
    # Bars: saturated blobs standing on the x-axis.
    saturation = (high - low)[top_row:baseline, axis_x + 3:]
    labels, count = ndimage.label(saturation > 80)
    for box in ndimage.find_objects(labels):
        marks.append({"x": axis_x + 3 + (box[1].start + box[1].stop - 1) / 2, "y": top_row + box[0].start})
else:
    # Markers: dark dots inside the plot area (the line itself is coloured, gridlines light grey).
    labels, count = ndimage.label(dark[top_row:baseline - 1, axis_x + 3:])
    for index, box in enumerate(ndimage.find_objects(labels)):
        ys, xs = np.nonzero(labels[box] == index + 1)
        if len(ys) >= 20:
            marks.append({"x": axis_x + 3 + box[1].start + xs.mean(), "y": top_row + box[0].start + ys.mean()})
marks.sort(key=lambda m: m["x"])
print(f"{len(marks)} data marks, tops/centres at rows", [round(m["y"], 1) for m in marks])

# %% turn
# Read the numbers left of the y-axis: each line of text there is one tick label.
tick_area = darkness(image.crop((0, 0, axis_x - 2, baseline + 12)))
inked_rows = (tick_area > 60).any(axis=1)
ticks = []
row = 0
while row < len(inked_rows):
    if inked_rows[row]:
        end = row
        while end < len(inked_rows) and inked_rows[end]:
            end = end + 1
        band = tick_area[row:end]
        value = int(read_line(band, "0123456789"))
        centre = (row + end - 1) / 2
        line_row = min(grid_rows + [baseline], key=lambda r: abs(r - centre))
        ticks.append((line_row, value))
        row = end
    else:
        row = row + 1
print("tick labels (row, value):", ticks)
slope, intercept = np.polyfit([t[0] for t in ticks], [t[1] for t in ticks], 1)
for m in marks:
    m["value"] = slope * m["y"] + intercept
print("values:", [round(m["value"], 2) for m in marks])

# Category labels sit under each mark; compare them with renderings of the candidate names.
gap = (marks[1]["x"] - marks[0]["x"]) if len(marks) > 1 else 80
labels_ink = [
    tight(darkness(image.crop((int(m["x"] - gap / 2), baseline + 3, int(m["x"] + gap / 2), baseline + 45))))
    for m in marks
]


def name_score(label_ink, name):
    return min(difference(label_ink, render(name, size)) for size in range(8, 30))


def mark_of(name):
    scores = [name_score(ink, name) for ink in labels_ink]
    return marks[int(np.argmin(scores))]


if ASK in ("highest", "lowest"):
    extreme = (max if ASK == "highest" else min)(marks, key=lambda m: m["value"])
    label_ink = labels_ink[marks.index(extreme)]
    choice = min(NAMES, key=lambda name: name_score(label_ink, name))
    print(f"{ASK} mark: {extreme['value']:.2f}, labelled {choice}")
    print("ABCDEFGH"[NAMES.index(choice)])
elif ASK == "difference":
    first, second = mark_of(NAMES[0]), mark_of(NAMES[1])
    print(f"{NAMES[0]}: {first['value']:.2f}, {NAMES[1]}: {second['value']:.2f}")
    print(round(first["value"]) - round(second["value"]))
else:
    mark = mark_of(NAMES[0])
    print(f"{NAMES[0]}: {mark['value']:.2f}")
    print(round(mark["value"]))
