import glob
import os
import shutil
import tempfile
import unittest
from pathlib import Path


def task_func(src_dir, pattern="*.log", archive_name="backup"):
    """Copy files matching pattern (recursively) to a backup dir, zip it, report sizes by suffix."""
    src = Path(src_dir)
    if not src.is_dir():
        raise FileNotFoundError(src_dir)
    backup = src / archive_name
    backup.mkdir(exist_ok=True)
    copied = []
    for path in sorted(glob.glob(os.path.join(src_dir, "**", pattern), recursive=True)):
        if Path(path).parent == backup:
            continue
        dest = backup / Path(path).relative_to(src).as_posix().replace("/", "_")
        shutil.copy2(path, dest)
        copied.append(dest.name)
    zip_path = shutil.make_archive(str(src / archive_name), "zip", root_dir=backup)
    sizes = {}
    for p in src.rglob("*"):
        if p.is_file():
            sizes[p.suffix or "<none>"] = sizes.get(p.suffix or "<none>", 0) + p.stat().st_size
    return copied, zip_path, sizes


class TestCases(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        os.makedirs(os.path.join(self.dir, "sub", "deep"))
        for rel, content in {"a.log": "x" * 10, "b.txt": "y" * 3, "sub/c.log": "zz", "sub/deep/d.log": "w"}.items():
            with open(os.path.join(self.dir, rel), "w") as fh:
                fh.write(content)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_copy_and_zip(self):
        copied, zip_path, sizes = task_func(self.dir)
        self.assertEqual(copied, ["a.log", "sub_c.log", "sub_deep_d.log"])
        self.assertTrue(zip_path.endswith("backup.zip"))
        self.assertTrue(os.path.exists(zip_path))
        self.assertEqual(sizes[".txt"], 3)
        self.assertEqual(sizes[".log"], 2 * 13)

    def test_named_temporary_file(self):
        with tempfile.NamedTemporaryFile("w", suffix=".log", dir=self.dir, delete=False) as fh:
            fh.write("hello")
        copied, _, _ = task_func(self.dir)
        self.assertIn(os.path.basename(fh.name), copied)
        os.unlink(fh.name)

    def test_cwd_relative(self):
        old = os.getcwd()
        os.chdir(self.dir)
        try:
            copied, _, _ = task_func(".", pattern="*.txt", archive_name="out")
            self.assertEqual(copied, ["b.txt"])
            self.assertTrue(os.path.isfile(os.path.join("out", "b.txt")))
        finally:
            os.chdir(old)

    def test_missing(self):
        with self.assertRaises(FileNotFoundError):
            task_func(os.path.join(self.dir, "nope"))


if __name__ == "__main__":
    unittest.main()
