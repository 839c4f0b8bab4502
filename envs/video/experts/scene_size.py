# The longer side (or diameter) of the OBJ-coloured object, in metres.
# Parameters: OBJ (a colour). Appended to the last turn of scene_map.py.

# %% turn
w, h = objects[OBJ]["size"]
print(f"{OBJ}: {w:.2f} m x {h:.2f} m")
print(round(max(w, h), 2))
