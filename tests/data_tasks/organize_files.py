import os
import shutil
import tempfile
import unittest


def task_func(directory):
    """Move every file in directory into a sub-folder named for its extension; counts."""
    moved = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        ext = os.path.splitext(name)[1].lstrip(".").lower() or "no_extension"
        os.makedirs(os.path.join(directory, ext), exist_ok=True)
        shutil.move(path, os.path.join(directory, ext, name))
        moved[ext] = moved.get(ext, 0) + 1
    return moved


class TestCases(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        for name in ["a.txt", "b.TXT", "c.csv", "README"]:
            with open(os.path.join(self.dir, name), "w") as handle:
                handle.write(name)
        os.mkdir(os.path.join(self.dir, "existing"))

    def tearDown(self):
        shutil.rmtree(self.dir)

    def test_moves(self):
        self.assertEqual(task_func(self.dir), {"txt": 2, "csv": 1, "no_extension": 1})
        self.assertEqual(sorted(os.listdir(os.path.join(self.dir, "txt"))), ["a.txt", "b.TXT"])
        self.assertTrue(os.path.isdir(os.path.join(self.dir, "existing")))

    def test_empty_directory(self):
        empty = tempfile.mkdtemp()
        self.assertEqual(task_func(empty), {})
        os.rmdir(empty)


if __name__ == "__main__":
    unittest.main()
