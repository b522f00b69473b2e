import unittest

import numpy as np
from scipy.interpolate import interp1d
from scipy.signal import find_peaks


def task_func(signal, min_height=0.5, min_distance=5):
    """Indices and heights of the peaks of a 1-D signal."""
    peaks, props = find_peaks(np.asarray(signal), height=min_height, distance=min_distance)
    return peaks.tolist(), np.round(props["peak_heights"], 3).tolist()


class TestCases(unittest.TestCase):
    def test_sine(self):
        t = np.linspace(0, 4 * np.pi, 400)
        peaks, heights = task_func(np.sin(t))
        self.assertEqual(len(peaks), 2)
        self.assertTrue(all(h > 0.99 for h in heights))

    def test_interpolate(self):
        f = interp1d([0, 1, 2], [0, 10, 0], kind="linear")
        self.assertAlmostEqual(float(f(0.5)), 5.0)


if __name__ == "__main__":
    unittest.main()
