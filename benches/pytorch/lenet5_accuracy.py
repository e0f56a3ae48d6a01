"""PyTorch's LeNet-5 trained with PyTorch's usual MNIST recipe: the reference that
docs/results.md puts beside each preset of lenet5-rs.

The network is the one `lenet5_torch.py` times (32x32 input, C1 6@5x5, 2x2 average
pooling, C3 16@5x5 fully connected, C5 120@5x5, F6 84, ten logits, tanh, softmax
cross-entropy), on the same input (28x28 padded to 32x32, background -0.1, ink
1.175). The recipe is the official PyTorch MNIST example's (pytorch/examples,
mnist/main.py): Adadelta with lr 1.0, the rate times 0.7 after every epoch
(StepLR), batch 64, shuffled each epoch. One JSON object per run on stdout, with
the test error after every epoch:

    {"torch": "2.x", "seed": 1, "data_dir": "...", "train": 60000, "test": 10000,
     "epochs": [{"epoch": 1, "test_error": 0.0123, "train_loss": ...}, ...]}

Usage: python lenet5_accuracy.py --data-dir data/mnist --seed 1 [--epochs 20] [--threads 1]
Needs torch and numpy; not part of the build or the tests.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lenet5_torch import lenet5, read_idx, to_input  # noqa: E402  (the same network and input)


def test_error(model, images, labels):
    model.eval()
    with torch.no_grad():
        wrong = 0
        for i in range(0, len(images), 1000):
            logits = model(to_input(images[i:i + 1000]))
            wrong += int((logits.argmax(1).numpy() != labels[i:i + 1000]).sum())
    model.train()
    return wrong / len(images)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="data/mnist")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train_x = read_idx(args.data_dir, "train-images-idx3-ubyte")
    train_y = read_idx(args.data_dir, "train-labels-idx1-ubyte").astype(np.int64)
    test_x = read_idx(args.data_dir, "t10k-images-idx3-ubyte")
    test_y = read_idx(args.data_dir, "t10k-labels-idx1-ubyte").astype(np.int64)
    model = lenet5()
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(args.seed)
    history = []
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(train_x))
        total, n = 0.0, 0
        for i in range(0, len(order), args.batch):
            idx = order[i:i + args.batch]
            loss = loss_fn(model(to_input(train_x[idx])), torch.from_numpy(train_y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
            n += len(idx)
        sched.step()
        history.append({"epoch": epoch, "train_loss": total / n, "test_error": test_error(model, test_x, test_y)})
        print(f"epoch {epoch}: test error {100 * history[-1]['test_error']:.2f}%", file=sys.stderr)
    print(json.dumps({
        "torch": torch.__version__, "seed": args.seed, "data_dir": args.data_dir,
        "train": len(train_x), "test": len(test_x), "recipe": "adadelta lr 1.0, x0.7 per epoch, batch 64",
        "epochs": history,
    }))


if __name__ == "__main__":
    main()
