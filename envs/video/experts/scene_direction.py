# Standing at the STAND-coloured object and facing the FACE-coloured one: which side is the
# TARGET-coloured object on? (objects: the mosaic measurements of scene_map.py)
# Parameters: STAND, FACE, TARGET (colours), OPTIONS. Appended to the last turn of scene_map.py.

# %% turn
import math

s, f, t = (np.array(objects[c]["centre"]) for c in (STAND, FACE, TARGET))
fx, fy = f[0] - s[0], -(f[1] - s[1])  # flip y: image rows grow downwards
tx, ty = t[0] - s[0], -(t[1] - s[1])
angle = math.degrees(math.atan2(fx * ty - fy * tx, fx * tx + fy * ty))  # > 0: to the left
side = "left" if angle > 0 else "right"
where = side if "left" in OPTIONS else ("front-" if abs(angle) < 90 else "back-") + side
print(f"the {TARGET} object is {angle:.0f} deg from the facing direction -> {where}")
print("ABCDEFGH"[OPTIONS.index(where)])
