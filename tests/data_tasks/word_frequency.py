import re
import unittest
from collections import Counter

import matplotlib.pyplot as plt

STOPWORDS = {"the", "a", "and", "of", "to", "is", "in"}


def task_func(text, top=5):
    """The top words (lower-cased, no stop words) and a bar chart of their counts."""
    words = [w for w in re.findall(r"[a-z']+", text.lower()) if w not in STOPWORDS]
    common = Counter(words).most_common(top)
    fig, ax = plt.subplots()
    if common:
        labels, counts = zip(*common)
        ax.bar(labels, counts)
    ax.set_xlabel("Word")
    ax.set_ylabel("Count")
    return common, ax


class TestCases(unittest.TestCase):
    def test_counts(self):
        common, ax = task_func("The cat and the hat. A cat is a cat; the HAT is red.", top=2)
        self.assertEqual(common, [("cat", 3), ("hat", 2)])
        self.assertEqual([p.get_height() for p in ax.patches], [3, 2])
        self.assertEqual([t.get_text() for t in ax.get_xticklabels()], ["cat", "hat"])

    def test_empty(self):
        common, ax = task_func("the and of")
        self.assertEqual(common, [])
        self.assertEqual(len(ax.patches), 0)

    def tearDown(self):
        plt.close("all")


if __name__ == "__main__":
    unittest.main()
