import os
import tempfile
import unittest

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps


def task_func(img_path, out_dir, size=(64, 64)):
    """Grayscale, blur and resize an image; save PNG and BMP; return (array, paths)."""
    if not os.path.exists(img_path):
        raise FileNotFoundError(img_path)
    with Image.open(img_path) as img:
        gray = ImageOps.grayscale(img).filter(ImageFilter.GaussianBlur(1)).resize(size)
        rotated = img.rotate(90, expand=True)
    paths = []
    for ext in ("png", "bmp"):
        path = os.path.join(out_dir, f"processed.{ext}")
        gray.save(path)
        paths.append(path)
    rotated.save(os.path.join(out_dir, "rotated.png"))
    return np.array(gray), paths


class TestCases(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        img = Image.new("RGB", (120, 80), "white")
        draw = ImageDraw.Draw(img)
        draw.rectangle([10, 10, 60, 60], fill=(255, 0, 0))
        draw.text((70, 30), "hi", fill="black")
        self.src = os.path.join(self.dir, "src.png")
        img.save(self.src)

    def test_outputs(self):
        arr, paths = task_func(self.src, self.dir)
        self.assertEqual(arr.shape, (64, 64))
        self.assertEqual(arr.dtype, np.uint8)
        self.assertLess(arr[20, 15], 120)
        self.assertGreater(arr[60, 60], 200)
        for path in paths:
            with Image.open(path) as im:
                self.assertEqual(im.size, (64, 64))
                self.assertEqual(im.mode, "L")
        with Image.open(os.path.join(self.dir, "processed.bmp")) as im:
            self.assertEqual(im.format, "BMP")
        with Image.open(os.path.join(self.dir, "rotated.png")) as im:
            self.assertEqual(im.size, (80, 120))

    def test_missing(self):
        with self.assertRaises(FileNotFoundError):
            task_func(os.path.join(self.dir, "nope.png"), self.dir)


if __name__ == "__main__":
    unittest.main()
