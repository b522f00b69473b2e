"""statsmodels: an OLS regression with a formula, its coefficients and R squared."""

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

rng = np.random.default_rng(3)
n = 500
df = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
df["y"] = 1.5 + 2.0 * df["x1"] - 0.7 * df["x2"] + rng.normal(scale=0.5, size=n)
fit = smf.ols("y ~ x1 + x2", data=df).fit()
print({name: round(value, 2) for name, value in fit.params.items()})
print(f"r2 {fit.rsquared:.3f}")
