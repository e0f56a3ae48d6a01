"""Animal-MNIST as IDX files: a second dataset of MNIST's shape for `lenet train`.

Animal-MNIST (PyPI package `animal-mnist`, version 0.4, MIT licence, by Sina
Mohammadi) holds 10,000 28x28 grayscale silhouettes of ten animals (bear, bird,
cat, cow, dog, elephant, giraffe, horse, sheep, zebra), 1,000 per class, white on
black like MNIST. No code of lenet5-rs was tuned on it. The package ships the
images as pickled numpy arrays; this script reads them straight from the wheel and
writes the four IDX files `lenet train --data-dir` reads, with a fixed split:
800 training and 200 test images per class (8,000 / 2,000), drawn by a seeded
permutation of each class, every class in the same proportion.

    pip download --no-deps animal-mnist==0.4          # animal_mnist-0.4-py3-none-any.whl
    python benches/datasets/animal_mnist.py animal_mnist-0.4-py3-none-any.whl data/animal-mnist
    lenet train --data-dir data/animal-mnist --model modern

It prints the SHA-256 of each decompressed file, which docs/results.md records.
Needs numpy; not part of the build or the tests.
"""

import gzip
import hashlib
import io
import os
import pickle
import struct
import sys
import zipfile

import numpy as np

MEMBERS = (
    "animal_mnist/data/Animal_MNIST/animal_data_version_3.gz",
    "animal_mnist/data/Animal_MNIST/animal_label_version_3.gz",
)
TRAIN_PER_CLASS = 800
SPLIT_SEED = 2026


def idx_bytes(array):
    """A uint8 array as an IDX file: magic 0x0000 08 NDIM, then each dimension."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    wheel, out = sys.argv[1], sys.argv[2]
    with zipfile.ZipFile(wheel) as z:
        images, labels = (pickle.load(gzip.open(io.BytesIO(z.read(m)))) for m in MEMBERS)
    images, labels = np.asarray(images, dtype=np.uint8), np.asarray(labels)
    if images.shape != (10000, 28, 28) or labels.shape != (10000,):
        sys.exit(f"unexpected shapes {images.shape} / {labels.shape}: not animal-mnist 0.4?")
    rng = np.random.default_rng(SPLIT_SEED)
    train_idx, test_idx = [], []
    for c in range(10):
        members = rng.permutation(np.flatnonzero(labels == c))
        train_idx.extend(members[:TRAIN_PER_CLASS])
        test_idx.extend(members[TRAIN_PER_CLASS:])
    # classes interleaved in a seeded order, as in MNIST's files
    train_idx = rng.permutation(train_idx)
    test_idx = rng.permutation(test_idx)
    os.makedirs(out, exist_ok=True)
    files = {
        "train-images-idx3-ubyte": idx_bytes(images[train_idx]),
        "train-labels-idx1-ubyte": idx_bytes(labels[train_idx].astype(np.uint8)),
        "t10k-images-idx3-ubyte": idx_bytes(images[test_idx]),
        "t10k-labels-idx1-ubyte": idx_bytes(labels[test_idx].astype(np.uint8)),
    }
    for name, data in files.items():
        path = os.path.join(out, name + ".gz")
        tmp = path + ".tmp"
        with gzip.open(tmp, "wb", compresslevel=9) as f:
            f.write(data)
        os.replace(tmp, path)
        print(f"{hashlib.sha256(data).hexdigest()}  {name}")


if __name__ == "__main__":
    main()
