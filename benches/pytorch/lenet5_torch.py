"""PyTorch baseline for `cargo xtask bench-report --torch-python PYTHON`.

The speed issue compares lenet5-rs with PyTorch on the same machine, in the same
run. This script trains and runs, in PyTorch eager mode on the CPU, a LeNet-5 of the
same shapes as ours (32x32 input, C1 6@5x5, 2x2 average pooling, C3 16@5x5 fully
connected to S2, C5 120@5x5, F6 84, ten outputs; tanh activations,
softmax cross-entropy, SGD with momentum 0.9) and prints one JSON object:

    {"torch": "2.x", "training": [{"batch": 32, "threads": 2, "images": 10000,
      "images_per_s": ...}, ...], "inference": [{"batch": 1000, "threads": 2,
      "images_per_s": ...}, ...]}

Timing covers what `lenet train` times: building each batch from the uint8 images
(scale to [-0.1, 1.175], pad 28x28 to 32x32), forward, backward and update;
inference covers forward and argmax over the 10,000 test images. Each configuration
keeps the fastest of `--rounds` runs, as the Rust side does.

Usage: python lenet5_torch.py --data-dir data/mnist [--train-limit 10000] [--rounds 2]
Needs torch and numpy; not part of the build or the tests.
"""

import argparse
import gzip
import json
import os
import struct
import sys
import time

import numpy as np
import torch
from torch import nn


def read_idx(data_dir, stem):
    """The IDX file `stem`, raw or .gz, as a numpy array of its header's shape."""
    for name, opener in ((stem, open), (stem + ".gz", gzip.open)):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            with opener(path, "rb") as f:
                data = f.read()
            break
    else:
        sys.exit(f"{stem}: not found in {data_dir} (run `cargo xtask fetch-mnist`)")
    magic, = struct.unpack(">I", data[:4])
    if magic >> 8 != 0x08:
        sys.exit(f"{stem}: not a uint8 IDX file")
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def lenet5():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2),       # 6x28x28 -> 6x14x14
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),      # 16x10x10 -> 16x5x5
        nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(),       # 120
        nn.Linear(120, 84), nn.Tanh(),                        # 84
        nn.Linear(84, 10),                                    # logits
    )


def to_input(images_u8):
    """uint8 [n, 28, 28] -> float32 [n, 1, 32, 32] in [-0.1, 1.175], background -0.1."""
    x = torch.tensor(images_u8, dtype=torch.float32).mul_(1.275 / 255.0).sub_(0.1)
    return nn.functional.pad(x, (2, 2, 2, 2), value=-0.1).unsqueeze(1)


def train_images_per_s(images, labels, batch, threads, limit):
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    model = lenet5()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    order = np.random.default_rng(1).permutation(len(images))[:limit]
    start = time.perf_counter()
    for i in range(0, limit, batch):
        idx = order[i:i + batch]
        x = to_input(images[idx])
        y = torch.from_numpy(labels[idx].astype(np.int64))
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    return limit / (time.perf_counter() - start)


def inference_images_per_s(images, batch, threads):
    torch.set_num_threads(threads)
    model = lenet5().eval()
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            model(to_input(images[i:i + batch])).argmax(1)
    return len(images) / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="data/mnist")
    p.add_argument("--train-limit", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    if a.train_limit < 1 or a.rounds < 1:
        sys.exit("--train-limit and --rounds must be at least 1")
    train_x = read_idx(a.data_dir, "train-images-idx3-ubyte")
    train_y = read_idx(a.data_dir, "train-labels-idx1-ubyte")
    test_x = read_idx(a.data_dir, "t10k-images-idx3-ubyte")
    best = lambda f: max(f() for _ in range(a.rounds))
    training = []
    for batch in (1, 32, 256):
        # batch 1 runs a tenth of the images (PyTorch's per-call overhead dominates)
        limit = min(len(train_x), a.train_limit // 10 if batch == 1 else a.train_limit)
        for threads in (1, 2):
            ips = best(lambda: train_images_per_s(train_x, train_y, batch, threads, limit))
            print(f"  pytorch batch {batch} threads {threads}: {ips:.0f} images/s", file=sys.stderr)
            training.append({"batch": batch, "threads": threads, "images": limit, "images_per_s": ips})
    inference = []
    for batch, threads in ((1, 1), (1, 2), (1000, 1), (1000, 2)):
        images = test_x[:1000] if batch == 1 else test_x
        ips = best(lambda: inference_images_per_s(images, batch, threads))
        print(f"  pytorch inference batch {batch} threads {threads}: {ips:.0f} images/s", file=sys.stderr)
        inference.append({"batch": batch, "threads": threads, "images": len(images), "images_per_s": ips})
    print(json.dumps({"torch": torch.__version__, "training": training, "inference": inference}))


if __name__ == "__main__":
    main()
