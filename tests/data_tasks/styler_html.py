import base64
import io
import unittest

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def task_func(df):
    """An HTML report: styled table with highlighted maxima and an embedded PNG histogram."""
    styled = (df.style.highlight_max(color="yellow", axis=0)
              .format("{:.1f}").set_caption("Scores").background_gradient(cmap="Blues"))
    table_html = styled.to_html()
    fig, ax = df.plot(kind="hist", alpha=0.5, bins=5, title="Distribution").figure, plt.gca()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    img = base64.b64encode(buf.getvalue()).decode("ascii")
    plain = df.describe().to_html(float_format="%.2f", classes="stats")
    return f"<html><body>{table_html}{plain}<img src='data:image/png;base64,{img}'/></body></html>", ax


class TestCases(unittest.TestCase):
    def setUp(self):
        rng = np.random.default_rng(5)
        self.df = pd.DataFrame(rng.integers(0, 100, (6, 3)), columns=["math", "art", "pe"]).astype(float)

    def test_html(self):
        html, _ = task_func(self.df)
        self.assertIn("<caption>Scores</caption>", html)
        self.assertIn("background-color: yellow", html)
        self.assertIn('class="dataframe stats"', html)
        self.assertIn("data:image/png;base64,iVBOR", html)
        self.assertEqual(html.count("<table"), 2)

    def test_text_latex(self):
        text = self.df.head(2).to_string(float_format="{:.1f}".format)
        self.assertIn("math", text.splitlines()[0])
        latex = self.df.style.to_latex()
        self.assertIn("\\begin{tabular}", latex)


if __name__ == "__main__":
    unittest.main()
