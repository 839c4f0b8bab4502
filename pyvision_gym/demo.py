"""A short scripted episode through the runtime: what ``make demo`` shows on a fresh machine."""

from __future__ import annotations

import time

import numpy as np
from PIL import Image, ImageDraw

from .runtime import Runtime

DEMO_TURNS = [
    # 1. look at the whole picture, find the small red marker
    "import numpy as np\n"
    "arr = np.asarray(image)\n"
    "red = (arr[..., 0] > 200) & (arr[..., 1] < 60) & (arr[..., 2] < 60)\n"
    "ys, xs = np.nonzero(red)\n"
    "print('image size:', image.size, '| red pixels:', red.sum())\n"
    "print('red box:', xs.min(), ys.min(), xs.max(), ys.max())",
    # 2. state persists: crop around it, zoom and show
    "box = (int(xs.min()) - 20, int(ys.min()) - 20, int(xs.max()) + 20, int(ys.max()) + 20)\n"
    "crop = image.crop(box).resize((240, 240))\n"
    "plt.imshow(crop); plt.axis('off'); plt.title('zoom'); plt.show()\n"
    "print('shown a zoom of', box)",
    # 3. hostile code is refused, the runtime keeps serving
    "open('/etc/passwd').read()",
    # 4. an infinite loop is stopped by the wall-clock limit
    "while True:\n    pass",
    # 5. and the next call works, with the inputs loaded again
    "print('still here:', image.size)",
]


def make_demo_image(seed: int = 0) -> Image.Image:
    """A 1600×1200 noisy canvas with one small red square."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(90, 170, size=(1200, 1600, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    x, y = int(rng.integers(100, 1400)), int(rng.integers(100, 1000))
    ImageDraw.Draw(img).rectangle((x, y, x + 11, y + 11), fill=(230, 20, 20))
    return img


def run_demo(timeout: float = 30.0) -> None:
    t0 = time.perf_counter()
    with Runtime(timeout=min(timeout, 3.0)) as rt:
        rt.reset(images={"image": make_demo_image()})
        print(f"runtime ready in {time.perf_counter() - t0:.2f} s | isolation: {rt.report.method} | {rt.report.describe()}")
        for i, code in enumerate(DEMO_TURNS, 1):
            print(f"\n--- turn {i}: code " + "-" * 50)
            print(code)
            r = rt.run(code)
            print(f"--- turn {i}: observation ({r.seconds * 1000:.1f} ms" + (", runtime restarted" if r.state_lost else "") + ")")
            print(r.text() or "(no output)")
            for w, h in r.image_sizes:
                print(f"[image {w}x{h}]")
    print(f"\ndemo finished in {time.perf_counter() - t0:.2f} s")

