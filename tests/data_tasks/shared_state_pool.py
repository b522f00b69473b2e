import unittest
from multiprocessing import Lock, Manager, Pool, Value

import numpy as np
import pandas as pd

_processed = Value("i", 0)
_lock = Lock()


def _score(args):
    """Score one group and record it: the shared counter under its lock, the summary
    in the manager's dict."""
    name, values, summary = args
    values = np.asarray(values, dtype=float)
    score = float(np.round(values.mean() / (values.std(ddof=1) or 1.0), 4))
    with _lock:
        _processed.value += 1
    summary[name] = {"n": int(values.size), "score": score}
    return name, score


def task_func(df, workers=3):
    """Per-group signal-to-noise score of 'value' (mean over sample std), computed in a
    process pool; returns (DataFrame sorted by score descending, groups processed)."""
    if not {"group", "value"} <= set(df.columns):
        raise ValueError("df needs 'group' and 'value' columns")
    with _processed.get_lock():
        _processed.value = 0
    with Manager() as manager:
        summary = manager.dict()
        jobs = [
            (name, part["value"].tolist(), summary)
            for name, part in df.groupby("group")
        ]
        with Pool(workers) as pool:
            scores = dict(pool.map(_score, jobs))
        table = pd.DataFrame.from_dict(dict(summary), orient="index")
    table["score"] = table.index.map(scores)
    table = table.sort_values("score", ascending=False)
    table.index.name = "group"
    return table, _processed.value


class TestCases(unittest.TestCase):
    def setUp(self):
        rng = np.random.default_rng(7)
        self.df = pd.DataFrame(
            {
                "group": np.repeat(["a", "b", "c", "d"], 50),
                "value": np.concatenate(
                    [rng.normal(loc, 1.0, 50) for loc in (5.0, 1.0, 3.0, 0.5)]
                ),
            }
        )

    def test_scores_and_order(self):
        table, processed = task_func(self.df)
        self.assertEqual(processed, 4)
        self.assertEqual(list(table.index), ["a", "c", "b", "d"])
        self.assertTrue((table["n"] == 50).all())
        expected = self.df.groupby("group")["value"].agg(
            lambda v: v.mean() / v.std(ddof=1)
        )
        for name, score in table["score"].items():
            self.assertAlmostEqual(score, expected[name], places=3)

    def test_counter_resets_between_calls(self):
        task_func(self.df.head(100))
        _, processed = task_func(self.df.head(100))
        self.assertEqual(processed, 2)

    def test_bad_columns(self):
        with self.assertRaises(ValueError):
            task_func(pd.DataFrame({"x": [1]}))


if __name__ == "__main__":
    unittest.main()
