import unittest
from urllib.parse import urljoin

from bs4 import BeautifulSoup


def task_func(html, base_url):
    """The absolute URLs of the page's links, without duplicates, in order of appearance."""
    soup = BeautifulSoup(html, "html.parser")
    seen = []
    for anchor in soup.find_all("a", href=True):
        url = urljoin(base_url, anchor["href"])
        if url not in seen:
            seen.append(url)
    return seen


class TestCases(unittest.TestCase):
    def test_links(self):
        html = (
            "<html><body><a href='/a'>A</a><p><a href='b.html'>B</a></p>"
            "<a href='https://other.test/x'>X</a><a href='/a'>again</a><a>none</a></body></html>"
        )
        self.assertEqual(
            task_func(html, "https://site.test/dir/"),
            ["https://site.test/a", "https://site.test/dir/b.html", "https://other.test/x"],
        )

    def test_lxml_parser_too(self):
        soup = BeautifulSoup("<ul><li>1</li><li>2</li></ul>", "lxml")
        self.assertEqual([li.text for li in soup.find_all("li")], ["1", "2"])


if __name__ == "__main__":
    unittest.main()
