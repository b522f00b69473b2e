"""Sales by region and product: a group-by, a merge with a lookup table, a pivot."""

import numpy as np
import pandas as pd

rng = np.random.default_rng(7)
n = 20_000
sales = pd.DataFrame(
    {
        "region": rng.choice(["north", "south", "east", "west"], n),
        "product_id": rng.integers(1, 51, n),
        "units": rng.integers(1, 20, n),
        "price": rng.uniform(1.0, 100.0, n).round(2),
    }
)
products = pd.DataFrame(
    {"product_id": np.arange(1, 51), "category": [f"cat{i % 5}" for i in range(50)]}
)
sales["revenue"] = sales["units"] * sales["price"]
merged = sales.merge(products, on="product_id", how="left")
by_region = merged.groupby("region")["revenue"].agg(["sum", "mean", "count"]).round(2)
pivot = merged.pivot_table(
    index="region", columns="category", values="units", aggfunc="sum"
).astype(int)
print(by_region.to_string())
print(pivot.loc["north"].to_dict())
