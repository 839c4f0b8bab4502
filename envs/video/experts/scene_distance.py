# The distance between the centres of the A- and B-coloured objects, in metres.
# Parameters: A, B (colours). Appended to the last turn of scene_map.py.

# %% turn
d = float(np.linalg.norm(np.array(objects[A]["centre"]) - np.array(objects[B]["centre"])))
print(f"distance between the {A} and {B} objects: {d:.3f} m")
print(round(d, 2))
