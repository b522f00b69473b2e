import os
import tempfile
import unittest

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image


def task_func(series, out_dir="/tmp/gallery", quality=85):
    """Plot each named series as a line chart saved as JPEG in out_dir, then make a
    contact sheet of 96x72 thumbnails side by side; returns (chart paths, sheet path)."""
    if not series:
        raise ValueError("no series to plot")
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for name, values in series.items():
        fig, ax = plt.subplots(figsize=(4, 3), dpi=80)
        ax.plot(values)
        ax.set_title(name)
        path = os.path.join(out_dir, f"{name}.jpg")
        fig.savefig(path, pil_kwargs={"quality": quality})
        plt.close(fig)
        paths.append(path)
    thumbs = []
    for path in paths:
        with Image.open(path) as image:
            image.thumbnail((96, 72))
            thumbs.append(image.convert("RGB"))
    sheet = Image.new("RGB", (96 * len(thumbs), 72), "white")
    for i, thumb in enumerate(thumbs):
        sheet.paste(thumb, (96 * i, 0))
    sheet_path = os.path.join(out_dir, "sheet.jpg")
    sheet.save(sheet_path, quality=quality)
    return paths, sheet_path


class TestCases(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        x = np.linspace(0, 6, 60)
        noise = np.random.default_rng(1).normal(size=60)
        self.series = {"sine": np.sin(x), "ramp": x, "noise": noise}

    def test_charts_are_jpegs_of_the_figure_size(self):
        paths, _ = task_func(self.series, self.dir)
        names = [os.path.basename(p) for p in paths]
        self.assertEqual(names, ["sine.jpg", "ramp.jpg", "noise.jpg"])
        for path in paths:
            with Image.open(path) as image:
                self.assertEqual(image.format, "JPEG")
                self.assertEqual(image.size, (320, 240))
                pixels = np.asarray(image.convert("L"), dtype=float)
            self.assertGreater(pixels.mean(), 200)  # mostly white background
            self.assertLess(pixels.min(), 100)  # but something dark was drawn

    def test_contact_sheet(self):
        _, sheet = task_func(self.series, self.dir, quality=70)
        with Image.open(sheet) as image:
            self.assertEqual(
                (image.format, image.mode, image.size), ("JPEG", "RGB", (288, 72))
            )

    def test_default_dir_is_under_tmp(self):
        paths, sheet = task_func({"one": [1, 2, 3]})
        self.assertTrue(sheet.startswith("/tmp/gallery/"))
        self.assertTrue(os.path.exists(paths[0]))
        self.assertEqual(tempfile.gettempdir(), "/tmp")

    def test_empty(self):
        with self.assertRaises(ValueError):
            task_func({}, self.dir)


if __name__ == "__main__":
    unittest.main()
