"""A two-panel chart saved as PNG: a line with markers and a bar chart with labels."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

x = np.linspace(0, 10, 200)
fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3), dpi=100)
left.plot(x, np.sin(x), label="sin")
left.plot(x, np.cos(x), "--", label="cos")
left.set_title("Waves")
left.legend()
right.bar(["a", "b", "c", "d"], [3, 7, 2, 5], color="tab:orange")
right.set_title("Counts")
fig.tight_layout()
fig.savefig("chart.png")
with open("chart.png", "rb") as handle:
    head = handle.read(24)
width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
print(head[:8] == b"\x89PNG\r\n\x1a\n", width, height)
