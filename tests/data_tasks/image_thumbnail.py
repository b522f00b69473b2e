import io
import unittest

import numpy as np
from PIL import Image


def task_func(width, height, size=(64, 64)):
    """A gradient image, thumbnailed within size, as PNG bytes; (bytes, thumbnail size)."""
    gradient = np.tile(np.linspace(0, 255, width, dtype=np.uint8), (height, 1))
    image = Image.fromarray(gradient, mode="L").convert("RGB")
    image.thumbnail(size)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue(), image.size


class TestCases(unittest.TestCase):
    def test_thumbnail(self):
        data, size = task_func(400, 200)
        self.assertEqual(size, (64, 32))
        self.assertTrue(data.startswith(b"\x89PNG"))
        self.assertEqual(Image.open(io.BytesIO(data)).size, (64, 32))


if __name__ == "__main__":
    unittest.main()
