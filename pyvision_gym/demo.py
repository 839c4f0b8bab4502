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


def run_env_demo(seed: int = 0) -> None:
    """One image and one video episode, played by the families' scripted experts."""
    import gymnasium as gym

    from . import family_env_id
    from .envs import all_families

    for env_id, family in (("PyVisionImage-v0", "visual_search_attribute"), ("PyVisionVideo-v0", "event_counting")):
        fam = all_families()[family]
        env = gym.make(family_env_id(fam.modality, family), difficulty=1)
        t0 = time.perf_counter()
        obs, info = env.reset(seed=seed)
        task = env.unwrapped.task
        print(f"\n=== {env_id} / {family} (seed {seed}) ===")
        print(obs["text"].split("Question:")[-1].strip())
        for src in fam.expert(task):
            obs, _, _, _, info = env.step(f"<code>\n```python\n{src}\n```\n</code>")
            shown = f" [+{len(obs['images'])} image(s)]" if obs["images"] else ""
            print(f"  turn {info['turn']}: code of {len(src.splitlines())} lines -> {obs['text'].strip().splitlines()[-1][:80]!r}{shown}")
        final = obs["text"].strip().splitlines()[-1]
        obs, reward, _, _, info = env.step(f"<answer>\\boxed{{{final}}}</answer>")
        tokens = f"visual tokens {info['visual_tokens']:,}"
        if "visual_tokens_full_video" in info:
            tokens += f" (whole video would cost {info['visual_tokens_full_video']:,})"
        print(
            f"  answer {info['answer']!r}, ground truth {info['ground_truth']!r}: reward {reward:.2f} "
            f"{info['reward_terms']}, {info['tool_calls']} tool calls, {tokens}, {time.perf_counter() - t0:.1f} s"
        )
        env.close()
