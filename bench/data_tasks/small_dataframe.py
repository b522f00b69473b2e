"""The imports an agent writes first, and one small DataFrame operation."""

import matplotlib.pyplot as plt  # noqa: F401
import numpy as np
import pandas as pd

df = pd.DataFrame({"k": list("abcab"), "v": np.arange(5)})
print(df.groupby("k").v.sum().to_dict())
