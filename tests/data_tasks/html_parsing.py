import io
import unittest

import pandas as pd
from bs4 import BeautifulSoup
from lxml import etree, html

PAGE = """<html><head><title>Shop</title></head><body>
<div id="main"><h1 class="t">Products</h1>
<table id="p"><thead><tr><th>Name</th><th>Price</th></tr></thead>
<tbody><tr><td><a href="/a">Apple</a></td><td>$1.20</td></tr>
<tr><td><a href="https://x.test/b">Banana</a></td><td>$0.50</td></tr></tbody></table>
<ul><li class="tag">fruit</li><li class="tag">fresh</li><li>other</li></ul>
</div><p>Contact: <span>sales@shop.test</span></p></body></html>"""


def task_func(page, base="https://shop.test"):
    """Scrape a product page: table as DataFrame (pandas), links (bs4), tags (lxml xpath)."""
    soup = BeautifulSoup(page, "html.parser")
    links = [a["href"] if a["href"].startswith("http") else base + a["href"] for a in soup.select("table a[href]")]
    title = soup.title.string
    tree = html.fromstring(page)
    tags = tree.xpath('//li[@class="tag"]/text()')
    heading = tree.cssselect("h1.t")[0].text_content() if hasattr(tree, "cssselect") else tree.xpath("//h1")[0].text
    soup_lxml = BeautifulSoup(page, "lxml")
    email = soup_lxml.find("span").get_text(strip=True)
    df = pd.read_html(io.StringIO(page), attrs={"id": "p"})[0]
    df["Price"] = df["Price"].str.lstrip("$").astype(float)
    return title, links, tags, heading, email, df


class TestCases(unittest.TestCase):
    def test_scrape(self):
        title, links, tags, heading, email, df = task_func(PAGE)
        self.assertEqual(title, "Shop")
        self.assertEqual(links, ["https://shop.test/a", "https://x.test/b"])
        self.assertEqual(tags, ["fruit", "fresh"])
        self.assertEqual(heading, "Products")
        self.assertEqual(email, "sales@shop.test")
        self.assertEqual(df["Name"].tolist(), ["Apple", "Banana"])
        self.assertAlmostEqual(df["Price"].sum(), 1.7)

    def test_xml(self):
        root = etree.fromstring(b"<r><i n='1'>a</i><i n='2'>b</i></r>")
        self.assertEqual([e.get("n") for e in root.iter("i")], ["1", "2"])
        self.assertIn(b"<i n=\"2\">b</i>", etree.tostring(root))
        df = pd.read_xml(io.StringIO("<r><i><n>1</n></i><i><n>2</n></i></r>"))
        self.assertEqual(df["n"].tolist(), [1, 2])


if __name__ == "__main__":
    unittest.main()
