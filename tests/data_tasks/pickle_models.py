import os
import pickle
import tempfile
import unittest
from dataclasses import dataclass


@dataclass
class Reading:
    sensor: str
    value: float


def task_func(readings, path):
    """Pickle the readings to path, load them back, and return the mean per sensor."""
    with open(path, "wb") as handle:
        pickle.dump(readings, handle)
    with open(path, "rb") as handle:
        loaded = pickle.load(handle)
    sums = {}
    for r in loaded:
        sums.setdefault(r.sensor, []).append(r.value)
    return {k: sum(v) / len(v) for k, v in sums.items()}


class TestCases(unittest.TestCase):
    def test_roundtrip(self):
        path = os.path.join(tempfile.mkdtemp(), "r.pkl")
        readings = [Reading("a", 1.0), Reading("a", 3.0), Reading("b", 5.0)]
        self.assertEqual(task_func(readings, path), {"a": 2.0, "b": 5.0})


if __name__ == "__main__":
    unittest.main()
