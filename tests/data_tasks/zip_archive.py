import io
import os
import tempfile
import unittest
import zipfile


def task_func(source_dir, pattern_ext=".log"):
    """Zip the files with the extension into source_dir/archive.zip; the archived names."""
    archive = os.path.join(source_dir, "archive.zip")
    names = sorted(n for n in os.listdir(source_dir) if n.endswith(pattern_ext))
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in names:
            zf.write(os.path.join(source_dir, name), arcname=name)
    return archive, names


class TestCases(unittest.TestCase):
    def test_archive(self):
        d = tempfile.mkdtemp()
        for name, text in [("x.log", "one\n" * 100), ("y.log", "two"), ("z.txt", "no")]:
            with open(os.path.join(d, name), "w") as handle:
                handle.write(text)
        archive, names = task_func(d)
        self.assertEqual(names, ["x.log", "y.log"])
        with zipfile.ZipFile(archive) as zf:
            self.assertEqual(zf.namelist(), names)
            self.assertEqual(zf.read("x.log").decode(), "one\n" * 100)
            self.assertLess(zf.getinfo("x.log").compress_size, 400)

    def test_in_memory_roundtrip(self):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("a.txt", "hello")
        with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
            self.assertEqual(zf.read("a.txt"), b"hello")


if __name__ == "__main__":
    unittest.main()
