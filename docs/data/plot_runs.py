"""Draws the figures of docs/results.md from docs/data/runs.csv.

runs.csv holds every epoch of every run behind docs/results.md: the topic it belongs
to, the flags given to `lenet train` (besides `--threads 1 --seed S`), the dataset,
the seed, and the training, test and validation error after that epoch (fractions).
Each figure below draws test error per epoch: one thin line per seed and the mean of
the seeds in bold. Needs matplotlib.

    python docs/data/plot_runs.py            # every figure
    python docs/data/plot_runs.py init mu    # some of them
"""

import csv
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DOCS = os.path.join(HERE, "..")

# figure -> panels; a panel is (title, y range, [(label, flags, dataset[, seeds]), ...]);
# without seeds, every seed in runs.csv
FIGURES = {
    "init": [
        ("initialisation (MNIST)", (0.6, 2.0), [
            ("eblearn's (the default)", "lenet train", "mnist"),
            ("fan-in, the paper's", "--init fan-in", "mnist"),
            ("uniform +-1/sqrt(F), torch's", "--init torch", "mnist"),
        ]),
    ],
    "mu": [
        ("SDLM's mu (MNIST)", (0.6, 2.5), [
            ("1.0, then 0.02 from pass 9 (the default)", "lenet train", "mnist", {"1", "2", "3", "4", "5"}),
            ("1.0 throughout", "--mu 1.0", "mnist"),
            ("0.5 throughout", "--mu 0.5", "mnist"),
            ("0.02 throughout, the paper's", "--mu 0.02", "mnist"),
        ]),
    ],
    "distortions": [
        ("classic (MNIST)", (0.4, 2.0), [
            ("no distortions", "lenet train", "mnist"),
            ("affine, strength 1", "--distort affine", "mnist"),
            ("affine, strength 0.5", "--distort affine --distort-strength 0.5", "mnist"),
        ]),
        ("modern (MNIST)", (0.4, 2.0), [
            ("no distortions", "--model modern", "mnist"),
            ("affine, strength 0.5", "--model modern --distort affine --distort-strength 0.5", "mnist"),
        ]),
    ],
    "output-layer": [
        ("no distortions (MNIST)", (0.4, 2.0), [
            ("RBF + MAP (the default)", "lenet train", "mnist"),
            ("softmax + cross-entropy", "--output softmax", "mnist"),
        ]),
        ("affine distortions 0.5 (MNIST)", (0.4, 2.0), [
            ("RBF + MAP", "--distort affine --distort-strength 0.5", "mnist"),
            ("softmax + cross-entropy", "--output softmax --distort affine --distort-strength 0.5", "mnist"),
        ]),
    ],
    "presets": [
        ("MNIST", (0.4, 3.0), [
            ("classic", "lenet train", "mnist"),
            ("modern", "--model modern", "mnist"),
            ("seed2018", "--model seed2018", "mnist"),
            ("PyTorch LeNet-5, Adadelta", "pytorch", "mnist"),
        ]),
        ("Animal-MNIST", (3.0, 30.0), [
            ("classic", "--model classic", "animal-mnist"),
            ("modern", "--model modern", "animal-mnist"),
            ("seed2018", "--model seed2018", "animal-mnist"),
            ("PyTorch LeNet-5, Adadelta", "pytorch", "animal-mnist"),
        ]),
    ],
    "ablation": [
        ("from the 2018 NumPy original to the paper (MNIST)", (0.6, 5.0), [
            ("0 the original", "--model seed2018 --batch-size 256 --momentum 0.9 "
             "--hessian-mode tensor-sum --mu 0.02 --lr 12.8", "mnist"),
            ("1 SDLM per parameter, batch 256",
             "--model seed2018 --pooling avg --batch-size 256 --momentum 0.9 --mu 0.5 --lr 0.0128", "mnist"),
            ("2 per-pattern updates", "--model seed2018 --pooling avg --lr 0.0005", "mnist"),
            ("3 trainable subsampling", "--model seed2018 --pooling subsample --lr 0.0005", "mnist"),
            ("4 fan-in init", "--model seed2018 --pooling subsample --init fan-in --lr 0.0005", "mnist"),
            ("5 MAP loss", "--init fan-in", "mnist", {"1", "2", "3"}),
            ("6 eblearn's init: classic", "lenet train", "mnist", {"1", "2", "3"}),
        ]),
    ],
}


def load():
    """(flags, dataset) -> seed -> [(epoch, test error %)]"""
    runs = defaultdict(lambda: defaultdict(list))
    with open(os.path.join(HERE, "runs.csv")) as f:
        for row in csv.DictReader(f):
            key = (row["flags"], row["dataset"])
            runs[key][row["seed"]].append((int(row["epoch"]), 100 * float(row["test_error"])))
    return runs


def draw(name, panels, runs):
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 4.2), squeeze=False)
    for ax, (title, ylim, lines) in zip(axes[0], panels):
        for i, (label, flags, dataset, *only) in enumerate(lines):
            seeds = {s: p for s, p in runs.get((flags, dataset), {}).items() if not only or s in only[0]}
            if not seeds:
                sys.exit(f"runs.csv has no run of {flags!r} on {dataset}")
            color = f"C{i}"
            for points in seeds.values():
                ax.plot(*zip(*points), color=color, alpha=0.2, linewidth=1)
            # the mean over the seeds that reached each epoch
            by_epoch = defaultdict(list)
            for points in seeds.values():
                for epoch, error in points:
                    by_epoch[epoch].append(error)
            epochs = sorted(by_epoch)
            mean = [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs]
            ax.plot(epochs, mean, color=color, linewidth=2.5, label=f"{label} ({len(seeds)} seeds)")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(*ylim)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("test error (%)")
    fig.tight_layout()
    path = os.path.join(DOCS, f"results-{name}.png")
    fig.savefig(path, dpi=80)
    print(os.path.relpath(path))


def main():
    runs = load()
    for name in sys.argv[1:] or FIGURES:
        draw(name, FIGURES[name], runs)


if __name__ == "__main__":
    main()
