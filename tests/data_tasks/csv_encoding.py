import io
import unittest

import chardet
import pandas as pd


def task_func(raw, min_confidence=0.5):
    """Read CSV bytes of unknown encoding: detect it with chardet, decode, parse.

    Returns the DataFrame and the detected encoding (lower case). Raises ValueError when
    the detection is not confident enough.
    """
    guess = chardet.detect(raw)
    if not guess["encoding"] or guess["confidence"] < min_confidence:
        raise ValueError(f"cannot tell the encoding: {guess}")
    text = raw.decode(guess["encoding"])
    return pd.read_csv(io.StringIO(text)), guess["encoding"].lower()


class TestCases(unittest.TestCase):
    def setUp(self):
        self.text = (
            "город,население,описание\n"
            "Москва,13010112,столица и крупнейший город России\n"
            "Санкт-Петербург,5601911,второй по численности населения город страны\n"
            "Новосибирск,1633595,крупнейший город Сибири на реке Обь\n"
        )

    def test_windows_1251(self):
        df, encoding = task_func(self.text.encode("cp1251"))
        self.assertEqual(encoding, "windows-1251")
        self.assertEqual(df["город"].tolist(), ["Москва", "Санкт-Петербург", "Новосибирск"])
        self.assertEqual(int(df["население"].sum()), 20245618)

    def test_utf8(self):
        df, encoding = task_func(self.text.encode("utf-8"))
        self.assertEqual(encoding, "utf-8")
        self.assertEqual(df.shape, (3, 3))

    def test_ascii(self):
        df, encoding = task_func(b"a,b\n1,2\n3,4\n")
        self.assertEqual(encoding, "ascii")
        self.assertEqual(df["b"].sum(), 6)

    def test_undetectable(self):
        with self.assertRaises(ValueError):
            task_func(b"")


if __name__ == "__main__":
    unittest.main()
