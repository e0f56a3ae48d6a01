"""Draws docs/output-layer.png from docs/data/output-layer.csv: test error per epoch
of `classic` with the RBF output (MAP loss) and with a softmax output
(cross-entropy), with and without affine distortions, one thin line per seed and
the mean of the seeds in bold. Needs matplotlib.

    python docs/data/plot_output_layer.py
"""

import csv
import os
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
runs = defaultdict(lambda: defaultdict(list))  # (output, distortion) -> seed -> [(epoch, error)]
with open(os.path.join(here, "output-layer.csv")) as f:
    for row in csv.DictReader(f):
        key = (row["output"], row["distortion"])
        runs[key][row["seed"]].append((int(row["epoch"]), 100 * float(row["test_error"])))

fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
colors = {"rbf": "tab:blue", "softmax": "tab:red"}
for ax, distortion in zip(axes, ["none", "affine 0.5"]):
    for output in ["rbf", "softmax"]:
        seeds = runs[(output, distortion)]
        for points in seeds.values():
            ax.plot(*zip(*points), color=colors[output], alpha=0.25, linewidth=1)
        epochs = sorted({e for p in seeds.values() for e, _ in p})
        mean = [sum(dict(p)[e] for p in seeds.values()) / len(seeds) for e in epochs]
        label = "RBF + MAP" if output == "rbf" else "softmax + cross-entropy"
        ax.plot(epochs, mean, color=colors[output], linewidth=2.5, label=f"{label} (mean of {len(seeds)})")
    ax.set_title(f"distortions: {distortion}")
    ax.set_xlabel("epoch")
    ax.set_ylim(0.4, 2.0)
    ax.grid(alpha=0.3)
axes[0].set_ylabel("test error (%)")
axes[0].legend()
fig.tight_layout()
fig.savefig(os.path.join(here, "..", "output-layer.png"), dpi=90)
