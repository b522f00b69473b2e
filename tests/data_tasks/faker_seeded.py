import re
import unittest

import pandas as pd
from faker import Faker


def task_func(n=20, seed=0, locale="en_US"):
    """A fake customer table: reproducible for a seed."""
    Faker.seed(seed)
    fake = Faker(locale)
    rows = []
    for _ in range(n):
        rows.append({
            "name": fake.name(),
            "email": fake.email(),
            "city": fake.city(),
            "joined": fake.date_between(start_date="-2y", end_date="today"),
            "spend": fake.pyfloat(min_value=0, max_value=500, right_digits=2),
            "text": fake.sentence(nb_words=6),
        })
    return pd.DataFrame(rows)


class TestCases(unittest.TestCase):
    def test_reproducible(self):
        pd.testing.assert_frame_equal(task_func(10, seed=3), task_func(10, seed=3))

    def test_shape_and_values(self):
        df = task_func(25)
        self.assertEqual(df.shape, (25, 6))
        self.assertTrue(all(re.match(r"[^@]+@[^@]+\.\w+$", e) for e in df["email"]))
        self.assertTrue(df["spend"].between(0, 500).all())

    def test_locale(self):
        df = task_func(5, locale="de_DE")
        self.assertEqual(len(df), 5)
        self.assertTrue(all(isinstance(n, str) and n for n in df["name"]))


if __name__ == "__main__":
    unittest.main()
