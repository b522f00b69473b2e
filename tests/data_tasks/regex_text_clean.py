import itertools
import re
import string
import unittest
from collections import Counter, OrderedDict, defaultdict, deque, namedtuple

STOPWORDS = {"the", "a", "an", "and", "or", "is", "to", "of", "in"}
Stat = namedtuple("Stat", ["word", "count"])


def task_func(text, n=3):
    """Clean text (URLs, emails, punctuation, digits), top-n words, bigrams, word groups by letter."""
    if not isinstance(text, str):
        raise TypeError("text must be a str")
    text = re.sub(r"https?://\S+|www\.\S+", " ", text)
    emails = re.findall(r"[\w.+-]+@[\w-]+\.[\w.]+", text)
    text = re.sub(r"[\w.+-]+@[\w-]+\.[\w.]+", " ", text)
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    text = re.sub(r"\d+", "", text)
    words = [w for w in text.split() if w not in STOPWORDS]
    top = [Stat(w, c) for w, c in Counter(words).most_common(n)]
    bigrams = Counter(zip(words, itertools.islice(words, 1, None)))
    by_letter = defaultdict(list)
    for key, group in itertools.groupby(sorted(set(words)), key=lambda w: w[0]):
        by_letter[key].extend(group)
    last = deque(words, maxlen=2)
    return top, bigrams.most_common(1)[0], OrderedDict(sorted(by_letter.items())), emails, list(last)


class TestCases(unittest.TestCase):
    text = ("The data is big. Big data, BIG ideas! Visit https://example.com/x?y=1 or "
            "mail bob.smith+x@mail.example.org in 2024; data science is big data.")

    def test_top(self):
        top, bigram, _, _, _ = task_func(self.text)
        self.assertEqual(top[0], Stat("data", 4))
        self.assertEqual(top[1].word, "big")
        self.assertEqual(bigram, (("data", "big"), 2))

    def test_groups_and_emails(self):
        _, _, groups, emails, last = task_func(self.text)
        self.assertEqual(groups["b"], ["big"])
        self.assertEqual(list(groups)[:3], ["b", "d", "i"])
        self.assertEqual(emails, ["bob.smith+x@mail.example.org"])
        self.assertEqual(last, ["big", "data"])

    def test_type(self):
        with self.assertRaises(TypeError):
            task_func(42)


if __name__ == "__main__":
    unittest.main()
