import unittest

import pandas as pd
from textblob import TextBlob


def task_func(df, column="review", threshold=0.1):
    """Score each text of a column with TextBlob: polarity, subjectivity and a label
    (positive above threshold, negative below -threshold, else neutral). Returns a new
    DataFrame and the mean polarity per product, highest first."""
    if column not in df.columns:
        raise KeyError(column)
    scores = df[column].fillna("").map(lambda text: TextBlob(str(text)).sentiment)
    out = df.assign(
        polarity=[s.polarity for s in scores], subjectivity=[s.subjectivity for s in scores]
    )
    out["label"] = pd.cut(
        out["polarity"],
        bins=[-1.01, -threshold, threshold, 1.01],
        labels=["negative", "neutral", "positive"],
        right=True,
    ).astype(str)
    by_product = out.groupby("product")["polarity"].mean().sort_values(ascending=False)
    return out, by_product


class TestCases(unittest.TestCase):
    def setUp(self):
        self.df = pd.DataFrame(
            {
                "product": ["kettle", "kettle", "toaster", "toaster", "lamp"],
                "review": [
                    "I love this kettle, it is excellent and fast.",
                    "Great value, very good.",
                    "Terrible. It broke after a day, awful quality.",
                    "The worst toaster I have ever bought.",
                    "It arrived on Tuesday.",
                ],
            }
        )

    def test_labels(self):
        out, _ = task_func(self.df)
        self.assertEqual(
            out["label"].tolist(), ["positive", "positive", "negative", "negative", "neutral"]
        )

    def test_scores_in_range(self):
        out, _ = task_func(self.df)
        self.assertTrue(out["polarity"].between(-1, 1).all())
        self.assertTrue(out["subjectivity"].between(0, 1).all())
        self.assertEqual(out.loc[4, "polarity"], 0.0)

    def test_known_phrase(self):
        out, _ = task_func(pd.DataFrame({"product": ["x"], "review": ["I love this"]}))
        self.assertAlmostEqual(out.loc[0, "polarity"], 0.5)
        self.assertAlmostEqual(out.loc[0, "subjectivity"], 0.6)

    def test_products_ranked(self):
        _, by_product = task_func(self.df)
        self.assertEqual(list(by_product.index), ["kettle", "lamp", "toaster"])
        self.assertLess(by_product["toaster"], 0)

    def test_missing_text_is_neutral(self):
        df = pd.DataFrame({"product": ["a"], "review": [None]})
        out, _ = task_func(df)
        self.assertEqual(out.loc[0, "label"], "neutral")

    def test_missing_column(self):
        with self.assertRaises(KeyError):
            task_func(self.df, column="text")


if __name__ == "__main__":
    unittest.main()
