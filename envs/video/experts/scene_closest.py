# Which option is closest (centre to centre) to the REF-coloured object?
# Parameters: REF, OPTIONS. Appended to the last turn of scene_map.py.

# %% turn
r = np.array(objects[REF]["centre"])
dist = {o: float(np.linalg.norm(np.array(objects[o.split(" ")[0]]["centre"]) - r)) for o in OPTIONS}
for o in OPTIONS:
    print(f"{o}: {dist[o]:.2f} m")
print("ABCDEFGH"[OPTIONS.index(min(OPTIONS, key=lambda o: dist[o]))])
