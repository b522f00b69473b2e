import unittest

import numpy as np
import pandas as pd
from scipy import stats


def task_func(df, group_col, value_col, alpha=0.05):
    """ANOVA, normality, chi-square and correlation tests over a DataFrame."""
    groups = [g[value_col].to_numpy() for _, g in df.groupby(group_col)]
    f_stat, p_anova = stats.f_oneway(*groups)
    _, p_shapiro = stats.shapiro(df[value_col])
    table = pd.crosstab(df[group_col], df[value_col] > df[value_col].median())
    chi2, p_chi2, dof, _ = stats.chi2_contingency(table)
    r, p_r = stats.pearsonr(df.index.to_numpy(), df[value_col])
    rho, _ = stats.spearmanr(df.index.to_numpy(), df[value_col])
    return {
        "anova_significant": bool(p_anova < alpha),
        "f": float(f_stat),
        "normal": bool(p_shapiro > alpha),
        "chi2_dof": int(dof),
        "chi2_p": float(p_chi2),
        "pearson_r": float(r),
        "spearman": float(rho),
        "zscores": stats.zscore(df[value_col]).round(3).tolist(),
    }


class TestCases(unittest.TestCase):
    def setUp(self):
        rng = np.random.default_rng(42)
        self.df = pd.DataFrame({
            "g": np.repeat(["a", "b", "c"], 40),
            "v": np.concatenate([rng.normal(0, 1, 40), rng.normal(0.2, 1, 40), rng.normal(3, 1, 40)]),
        })

    def test_results(self):
        res = task_func(self.df, "g", "v")
        self.assertTrue(res["anova_significant"])
        self.assertGreater(res["f"], 50)
        self.assertEqual(res["chi2_dof"], 2)
        self.assertLess(res["chi2_p"], 0.001)
        self.assertGreater(res["pearson_r"], 0.5)
        self.assertGreater(res["spearman"], 0.5)
        self.assertEqual(len(res["zscores"]), 120)
        self.assertAlmostEqual(float(np.mean(res["zscores"])), 0.0, places=2)

    def test_same_groups(self):
        rng = np.random.default_rng(3)
        df = pd.DataFrame({"g": ["x", "y"] * 50, "v": rng.normal(size=100)})
        res = task_func(df, "g", "v")
        self.assertFalse(res["anova_significant"])
        self.assertTrue(res["normal"])


if __name__ == "__main__":
    unittest.main()
