import unittest
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import Pool

import numpy as np
import pandas as pd


def _partial_sums(chunk):
    """Count, sum and sum of squares of 'value' per 'category' in one chunk: they add up."""
    values = chunk["value"].astype(float)
    grouped = pd.DataFrame({"value": values, "square": values**2}).groupby(chunk["category"])
    return pd.DataFrame(
        {
            "count": grouped["value"].count(),
            "total": grouped["value"].sum(),
            "squares": grouped["square"].sum(),
        }
    )


def task_func(df, n_chunks=4, max_workers=4, use_processes=False):
    """Per-category mean, sample standard deviation and count of 'value', computed over
    row chunks in parallel (threads, or a process pool with use_processes=True)."""
    if not isinstance(df, pd.DataFrame) or not {"category", "value"} <= set(df.columns):
        raise ValueError("df must be a DataFrame with 'category' and 'value' columns")
    if not isinstance(n_chunks, int) or n_chunks < 1:
        raise ValueError("n_chunks must be a positive integer")
    if df.empty:
        return pd.DataFrame(columns=["mean", "std", "count"])
    size = -(-len(df) // n_chunks)
    chunks = [df.iloc[start : start + size] for start in range(0, len(df), size)]
    if use_processes:
        with Pool(processes=max_workers) as pool:
            parts = pool.map(_partial_sums, chunks)
    else:
        with ThreadPoolExecutor(max_workers=max_workers) as executor:
            parts = list(executor.map(_partial_sums, chunks))
    sums = pd.concat(parts).groupby(level=0).sum().sort_index()
    count = sums["count"]
    mean = sums["total"] / count
    variance = (sums["squares"] - count * mean**2) / (count - 1)
    std = np.sqrt(variance.clip(lower=0)).where(count > 1)
    result = pd.DataFrame({"mean": mean, "std": std, "count": count.astype("int64")})
    result.index.name = "category"
    return result


class TestCases(unittest.TestCase):
    def setUp(self):
        rng = np.random.default_rng(7)
        self.df = pd.DataFrame(
            {
                "category": rng.choice(list("abcde"), size=2_000),
                "value": rng.normal(50.0, 12.0, size=2_000).round(3),
            }
        )

    def expected(self, df):
        return df.groupby("category")["value"].agg(["mean", "std", "count"])

    def test_matches_a_plain_group_by(self):
        result = task_func(self.df)
        pd.testing.assert_frame_equal(
            result, self.expected(self.df), check_exact=False, rtol=1e-9, check_names=False
        )

    def test_same_for_any_number_of_chunks(self):
        one = task_func(self.df, n_chunks=1)
        for n in (3, 7, 50):
            pd.testing.assert_frame_equal(task_func(self.df, n_chunks=n), one, rtol=1e-9)

    def test_process_pool_gives_the_same(self):
        pd.testing.assert_frame_equal(
            task_func(self.df, n_chunks=5, max_workers=2, use_processes=True),
            task_func(self.df, n_chunks=5, max_workers=2),
            rtol=1e-9,
        )

    def test_single_row_category_has_no_std(self):
        df = pd.DataFrame({"category": ["x", "y", "y"], "value": [1.0, 2.0, 4.0]})
        result = task_func(df, n_chunks=3)
        self.assertEqual(result.loc["x", "count"], 1)
        self.assertTrue(np.isnan(result.loc["x", "std"]))
        self.assertAlmostEqual(result.loc["y", "std"], np.std([2.0, 4.0], ddof=1))

    def test_empty_and_invalid_input(self):
        empty = task_func(pd.DataFrame({"category": [], "value": []}))
        self.assertTrue(empty.empty)
        self.assertEqual(list(empty.columns), ["mean", "std", "count"])
        with self.assertRaises(ValueError):
            task_func(pd.DataFrame({"value": [1.0]}))
        with self.assertRaises(ValueError):
            task_func(self.df, n_chunks=0)


if __name__ == "__main__":
    unittest.main()
