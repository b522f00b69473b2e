import unittest

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import cosine_similarity


def task_func(documents, query):
    """The index of the document most similar to the query and all similarities."""
    vectorizer = TfidfVectorizer(stop_words="english")
    matrix = vectorizer.fit_transform(documents + [query])
    scores = cosine_similarity(matrix[-1], matrix[:-1]).ravel()
    return int(scores.argmax()), scores.round(3).tolist()


class TestCases(unittest.TestCase):
    DOCS = [
        "The cat sat on the mat with another cat.",
        "Stock markets fell sharply on Monday.",
        "Dogs and cats are popular pets.",
    ]

    def test_best_match(self):
        best, scores = task_func(self.DOCS, "markets and stocks today")
        self.assertEqual(best, 1)
        self.assertEqual(len(scores), 3)

    def test_no_overlap(self):
        _, scores = task_func(self.DOCS, "zebra")
        self.assertEqual(scores, [0.0, 0.0, 0.0])


if __name__ == "__main__":
    unittest.main()
