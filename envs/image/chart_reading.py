"""chart_reading: read values off a rendered bar or line chart."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..base import AnswerType, Task, TaskFamily
from ..common import format_choices, letter_of, pick_options
from ..experts import expert_turns
from . import drawing as dr

CATEGORIES = [
    "Apple", "Pear", "Plum", "Kiwi", "Lime", "Fig", "Date", "Mango", "Peach", "Grape",
    "Melon", "Lemon", "Cherry", "Guava", "Olive", "Berry", "Quince", "Papaya",
]  # fmt: skip
STEPS = (1, 2, 5, 10, 20, 25, 50)  # y-axis tick steps to choose from
LEFT, RIGHT, TOP, BOTTOM = 80, 30, 50, 70  # margins around the plot area (px)
BLACK = (0, 0, 0)


@dataclass
class Chart:
    """What a chart shows and where: its size, y scale, categories and values."""

    width: int
    height: int
    n_ticks: int
    step: int
    names: list[str]
    values: list[int]
    kind: str  # "bar" or "line"

    @property
    def base_y(self) -> int:
        """Row of the x-axis."""
        return self.height - BOTTOM

    @property
    def ppu(self) -> float:
        """Pixels per unit on the y-axis (at least 2.2)."""
        return (self.base_y - TOP) / (self.step * self.n_ticks)


class ChartReading(TaskFamily):
    """Read values off a rendered bar or line chart (axis ticks, gridlines, category labels).

    ## Description
    A 720-960 x 520-640 px chart of fruit categories drawn with Pillow: a title, y tick labels
    at a round step with light gridlines, and one bar or one line marker per category with
    its name underneath. Values are integers; the highest and the lowest are unique.

    ## Question
    One of: "what is the value for <fruit>?" or "how much larger is the value for <fruit>
    than the value for <fruit>?" (answered with an integer), or "which fruit has the
    highest / lowest value?" (four lettered options).

    ## Answer type
    ``number`` with zero tolerance (the exact integer scores 1) or ``choice`` (the letter).

    ## Difficulty
    - 0: a bar chart, one bar colour, 4 categories, tick step at most 5; value or highest.
    - 1: 6 categories, bar (60%) or line chart, bars in mixed colours, any tick step;
      value, highest, lowest or difference.
    - 2: as 1 with 8 categories.

    ## Expert
    Turn 1 finds the axes (darkest long row and column), the gridlines and the bars (saturated
    blobs on the x-axis) or line markers (dark dots). Turn 2 reads the tick labels by matching
    glyphs with renderings of Pillow's default font, fits value = slope * row + intercept,
    matches the category labels against the candidate names and answers.

    ## Registered id
    ``PyVisionImage-ChartReading-v0``
    """

    name = "chart_reading"
    modality = "image"
    description = "Read a bar or line chart: the value of a named category, the highest/lowest one, or a difference."
    salt = 104

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        rng = self.rng(seed, difficulty)
        chart = self._layout(rng, difficulty)
        image = Image.new("RGB", (chart.width, chart.height), (255, 255, 255))
        draw = ImageDraw.Draw(image)
        label_size = int(rng.integers(12, 16))
        self._draw_scale(rng, draw, chart)
        centres = self._draw_data(rng, draw, chart, difficulty)
        self._draw_axes(draw, chart, centres, label_size)
        ask, question, answer, answer_type, options = self._question(rng, chart, difficulty)
        return self.make_task(
            seed, difficulty,
            question=question, answer=answer, answer_type=answer_type, options=options, tolerance=0.0,
            images={"image": image},
            metadata={"kind": chart.kind, "ask": ask, "names": chart.names, "values": chart.values,
                      "step": chart.step, "y_max": chart.step * chart.n_ticks},
        )

    # -- generation steps, in the order they draw random numbers ---------------------------
    @staticmethod
    def _layout(rng: np.random.Generator, difficulty: int) -> Chart:
        """Size, tick step, categories, chart kind and values."""
        width, height = int(rng.integers(720, 961)), int(rng.integers(520, 641))
        plot_h = height - BOTTOM - TOP
        n_ticks = int(rng.integers(4, 9))
        allowed = [s for s in STEPS if s * n_ticks <= plot_h / 2.2 and (difficulty or s <= 5)]
        step = allowed[int(rng.integers(len(allowed)))]
        y_max = step * n_ticks
        n_cat = (4, 6, 8)[difficulty]
        names = [CATEGORIES[i] for i in rng.choice(len(CATEGORIES), n_cat, replace=False)]
        kind = "bar" if difficulty == 0 or rng.random() < 0.6 else "line"
        v_min = max(1, math.ceil(10 / (plot_h / y_max)))  # bars at least 10 px tall
        while True:
            values = [int(v) for v in rng.integers(v_min, y_max + 1, size=n_cat)]
            if sorted(values)[-1] != sorted(values)[-2] and sorted(values)[0] != sorted(values)[1]:
                break
        return Chart(width, height, n_ticks, step, names, values, kind)

    @staticmethod
    def _draw_scale(rng: np.random.Generator, draw: ImageDraw.ImageDraw, chart: Chart) -> None:
        """The title, the gridlines and the y tick labels."""
        tick_size = int(rng.integers(12, 16))
        title = f"{['Sales', 'Harvest', 'Orders', 'Stock'][int(rng.integers(4))]} by fruit"
        tw = dr.font(16).getlength(title)
        draw.text((int(chart.width / 2 - tw / 2), 14), title, fill=BLACK, font=dr.font(16))
        _, t, _, b = dr.font(tick_size).getbbox("0")
        for k in range(chart.n_ticks + 1):
            y = chart.base_y - round(k * chart.step * chart.ppu)
            if k:
                draw.line([(LEFT + 2, y), (chart.width - RIGHT, y)], fill=(225, 225, 225), width=1)
            label = str(k * chart.step)
            lw = dr.spaced_text_width(label, tick_size)
            dr.draw_spaced_text(draw, (LEFT - 8 - lw, int(y - (t + b) / 2)), label, tick_size)

    @staticmethod
    def _draw_data(rng: np.random.Generator, draw: ImageDraw.ImageDraw, chart: Chart, difficulty: int) -> list[int]:
        """The bars or the line with its markers; returns the categories' centre columns."""
        n_cat = len(chart.values)
        slot = (chart.width - RIGHT - LEFT - 2) / n_cat
        centres = [int(LEFT + 2 + slot * (i + 0.5)) for i in range(n_cat)]
        tops = [chart.base_y - round(v * chart.ppu) for v in chart.values]
        palette, names = dr.SHAPE_PALETTE, dr.SHAPE_COLOURS
        if chart.kind == "bar":
            bw = int(slot * rng.uniform(0.45, 0.7))
            colours = (
                [palette[names[int(rng.integers(8))]]] * n_cat
                if difficulty == 0
                else [palette[names[int(i)]] for i in rng.integers(0, 8, size=n_cat)]
            )
            for cx, ty, colour in zip(centres, tops, colours, strict=True):
                draw.rectangle([cx - bw // 2, ty, cx - bw // 2 + bw - 1, chart.base_y - 1], fill=colour)
        else:
            draw.line(list(zip(centres, tops, strict=True)), fill=palette[names[int(rng.integers(8))]], width=2)
            r = 4
            for cx, ty in zip(centres, tops, strict=True):
                draw.ellipse([cx - r, ty - r, cx + r, ty + r], fill=(30, 30, 30))
        return centres

    @staticmethod
    def _draw_axes(draw: ImageDraw.ImageDraw, chart: Chart, centres: list[int], label_size: int) -> None:
        """Both axes (on top of everything) and the category names under the x-axis."""
        base_y = chart.base_y
        draw.rectangle([LEFT, TOP - 8, LEFT + 1, base_y + 1], fill=BLACK)
        draw.rectangle([LEFT, base_y, chart.width - RIGHT, base_y + 1], fill=BLACK)
        for cx, name in zip(centres, chart.names, strict=True):
            nw = dr.font(label_size).getlength(name)
            draw.text((int(cx - nw / 2), base_y + 10), name, fill=BLACK, font=dr.font(label_size))

    @staticmethod
    def _question(rng: np.random.Generator, chart: Chart,
                  difficulty: int) -> tuple[str, str, str, AnswerType, list[str] | None]:
        """The kind of question, its text, answer, answer type and options."""
        names, values = chart.names, chart.values
        what = "bar chart" if chart.kind == "bar" else "line chart (one marker per fruit)"
        questions = ["value", "highest"] + (["difference", "lowest"] if difficulty else [])
        ask = questions[int(rng.integers(len(questions)))]
        if ask == "value":
            i = int(rng.integers(len(names)))
            question = f"In this {what}, what is the value for {names[i]}? Answer with a single integer."
            return ask, question, str(values[i]), "number", None
        if ask == "difference":
            i, j = (int(v) for v in rng.choice(len(names), 2, replace=False))
            while values[i] == values[j]:
                i, j = (int(v) for v in rng.choice(len(names), 2, replace=False))
            if values[i] < values[j]:
                i, j = j, i
            question = (
                f"In this {what}, how much larger is the value for {names[i]} than the value for "
                f"{names[j]}? Answer with a single integer."
            )
            return ask, question, str(values[i] - values[j]), "number", None
        pick = int(np.argmax(values)) if ask == "highest" else int(np.argmin(values))
        options = pick_options(rng, names[pick], names)
        question = format_choices(f"In this {what}, which fruit has the {ask} value?", options)
        return ask, question, letter_of(options, names[pick]), "choice", options

    def expert(self, task: Task) -> list[str]:
        q = task.question
        if task.options:
            ask, names = ("highest" if "highest" in q else "lowest"), list(task.options)
        elif "how much larger" in q:
            ask = "difference"
            names = [q.split("value for ")[1].split(" than")[0], q.split("value for ")[2].split("?")[0]]
        else:
            ask, names = "value", [n for n in CATEGORIES if f"value for {n}?" in q]
        return expert_turns("image", self.name, helpers=("ocr_tools",),
                            BAR="bar chart" in q, ASK=ask, NAMES=names)
