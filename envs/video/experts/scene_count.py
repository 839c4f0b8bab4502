# How many yellow chairs? (counted in the mosaic by scene_map.py)
# Parameters: none. Appended to the last turn of scene_map.py.

# %% turn
print(len(chairs))
