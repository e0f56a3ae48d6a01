"""Reference values for LeNet-5 from PyTorch autograd in f64: every activation,
the loss, every parameter gradient and the input gradient of `classic` (the
1998 paper's network) and `modern`, on the first 4 MNIST training images.

`cargo xtask reference-data` runs this script; the tests never do. Two modes:

  --params-from DIR   take the input, labels and parameters from the reference
                      files in DIR and recompute everything else (with --check,
                      compare to those files instead of writing);
  (default)           read the first 4 training images from --mnist DIR and draw
                      the parameters by the paper's fan-in rule from --seed.

Written against torch 2.15 and numpy 2.4; safetensors are read and written here
(the format is an 8-byte header length, a JSON header, then the raw data).
"""

import argparse
import gzip
import json
import re
import struct
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
ROOT = Path(__file__).resolve().parents[2]
C3_TABLE = [
    [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 0], [5, 0, 1],
    [0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 0], [4, 5, 0, 1], [5, 0, 1, 2],
    [0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5], [0, 1, 2, 3, 4, 5],
]
MAP_J = 1.0


def squash(a):
    """The paper's f(a) = A tanh(S a), A = 1.7159, S = 2/3."""
    return 1.7159 * torch.tanh(2.0 * a / 3.0)


# ---------------------------------------------------------------- safetensors

def read_safetensors(path):
    raw = Path(path).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        assert info["dtype"] == "F64", (name, info["dtype"])
        a, b = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f8").reshape(info["shape"]).copy())
    return out, meta


def write_safetensors(path, tensors, meta):
    header, chunks, offset = {"__metadata__": meta}, [], 0
    for name in sorted(tensors):
        b = tensors[name].detach().contiguous().numpy().astype("<f8").tobytes()
        header[name] = {"dtype": "F64", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = Path(str(path) + ".tmp")  # written whole, then renamed into place
    tmp.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(chunks))
    tmp.replace(path)


# ---------------------------------------------------------------- inputs and parameters

def read_idx(path):
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    dims = raw[3]
    shape = struct.unpack(">" + "I" * dims, raw[4:4 + 4 * dims])
    return np.frombuffer(raw[4 + 4 * dims:], dtype=np.uint8).reshape(shape)


def first_images(mnist_dir, n=4):
    def find(name):
        for p in (Path(mnist_dir) / name, Path(mnist_dir) / (name + ".gz")):
            if p.exists():
                return p
        sys.exit(f"{mnist_dir}: no {name}[.gz] (cargo xtask fetch-mnist puts MNIST in data/mnist)")
    images = read_idx(find("train-images-idx3-ubyte"))[:n]
    labels = read_idx(find("train-labels-idx1-ubyte"))[:n]
    x = torch.full((n, 1, 32, 32), -0.1)  # the paper's scaling: background -0.1, ink 1.175
    x[:, 0, 2:30, 2:30] = -0.1 + 1.275 * torch.from_numpy(images.astype(np.float64)) / 255.0
    return x, torch.from_numpy(labels.astype(np.float64))


def bitmaps():
    """The RBF centres, +1/-1, from the ASCII art in lenet-layers' rbf.rs."""
    text = (ROOT / "crates/lenet-layers/src/rbf.rs").read_text()
    art = re.search(r'BITMAPS_ASCII: &str = "\n(.*?)\n";', text, re.S).group(1)
    rows = [line.split() for line in art.splitlines() if line.strip()]
    return torch.tensor([[1.0 if ch == "#" else -1.0 for row in rows for ch in row[d]] for d in range(10)])


def fan_in_params(preset, gen):
    """uniform(-2.4/F, 2.4/F), F the unit's fan-in (connected inputs only for C3)."""
    def u(shape, fan_in):
        return (torch.rand(shape, generator=gen) * 2 - 1) * 2.4 / fan_in
    p = {}
    p["c1.weight"], p["c1.bias"] = u((6, 1, 5, 5), 25), u((6,), 25)
    if preset == "classic":
        p["s2.coeff"], p["s2.bias"] = u((6,), 4), u((6,), 4)
        mask = c3_mask()
        fan = mask.sum(dim=(1, 2, 3))
        p["c3.weight"] = u((16, 6, 5, 5), 1) * mask / fan.view(16, 1, 1, 1)
        p["c3.bias"] = u((16,), 1) / fan
        p["s4.coeff"], p["s4.bias"] = u((16,), 4), u((16,), 4)
        p["output.centers"] = bitmaps()
    else:
        p["c3.weight"], p["c3.bias"] = u((16, 6, 5, 5), 150), u((16,), 150)
        p["output.weight"], p["output.bias"] = u((10, 84), 84), u((10,), 84)
    p["c5.weight"], p["c5.bias"] = u((120, 16, 5, 5), 400), u((120,), 400)
    p["f6.weight"], p["f6.bias"] = u((84, 120), 120), u((84,), 120)
    return p


def c3_mask():
    mask = torch.zeros(16, 6, 1, 1)
    for o, inputs in enumerate(C3_TABLE):
        mask[o, inputs] = 1.0
    return mask


# ---------------------------------------------------------------- the networks

def forward(preset, p, x, labels):
    """Returns (loss, {activation name: tensor})."""
    acts = {}
    def keep(name, t):
        acts[name] = t
        return t
    if preset == "classic":
        a = squash(keep("act.c1.pre", F.conv2d(x, p["c1.weight"], p["c1.bias"])))
        keep("act.c1.out", a)
        a = squash(keep("act.s2.pre", subsample(a, p["s2.coeff"], p["s2.bias"])))
        keep("act.s2.out", a)
        w3 = p["c3.weight"] * c3_mask()  # absent connections stay zero, and so do their gradients
        a = squash(keep("act.c3.pre", F.conv2d(a, w3, p["c3.bias"])))
        keep("act.c3.out", a)
        a = squash(keep("act.s4.pre", subsample(a, p["s4.coeff"], p["s4.bias"])))
        keep("act.s4.out", a)
        act = squash
    else:
        a = F.relu(keep("act.c1.pre", F.conv2d(x, p["c1.weight"], p["c1.bias"])))
        keep("act.c1.out", a)
        a = keep("act.s2.out", F.max_pool2d(a, 2))
        a = F.relu(keep("act.c3.pre", F.conv2d(a, p["c3.weight"], p["c3.bias"])))
        keep("act.c3.out", a)
        a = keep("act.s4.out", F.max_pool2d(a, 2))
        act = F.relu
    a = act(keep("act.c5.pre", F.conv2d(a, p["c5.weight"], p["c5.bias"]).flatten(1)))
    keep("act.c5.out", a)
    a = act(keep("act.f6.pre", F.linear(a, p["f6.weight"], p["f6.bias"])))
    keep("act.f6.out", a)
    y = labels.long()
    if preset == "classic":
        # RBF penalties, then the MAP criterion (eq. 9) averaged over the batch
        pen = keep("act.output.penalties", ((a.unsqueeze(1) - p["output.centers"].unsqueeze(0)) ** 2).sum(-1))
        j = torch.tensor(MAP_J)
        competing = torch.logsumexp(torch.cat([(-j).expand(len(y), 1), -pen], dim=1), dim=1)
        loss = (pen.gather(1, y.view(-1, 1)).squeeze(1) + competing).mean()
    else:
        logits = keep("act.output.logits", F.linear(a, p["output.weight"], p["output.bias"]))
        loss = F.cross_entropy(logits, y)
    return loss, acts


def subsample(a, coeff, bias):
    """LeNet's S layers: coeff x (sum of each 2x2 block) + bias, per map."""
    s = F.avg_pool2d(a, 2) * 4.0
    return s * coeff.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)


def reference(preset, params, x, labels):
    p = {k: v.clone().requires_grad_(k != "output.centers") for k, v in params.items()}
    x = x.clone().requires_grad_(True)
    loss, acts = forward(preset, p, x, labels)
    loss.backward()
    out = {"input": x.detach(), "labels": labels, "loss": loss.detach().view(1)}
    out.update({k: v.detach() for k, v in acts.items()})
    for k, v in p.items():
        out[f"param.{k}"] = v.detach()
        if v.grad is not None:
            out[f"grad.{k}"] = v.grad
    out["grad.input"] = x.grad
    return out


META = {
    "classic": {"preset": "classic", "loss": "MAP eq. 9, mean over the batch", "j": "1.0",
                "c3.weight": "zeros where the C3 table has no connection; their gradients are zero too"},
    "modern": {"preset": "modern", "loss": "softmax cross-entropy, mean over the batch"},
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "crates/lenet-layers/tests/data"))
    ap.add_argument("--params-from", help="folder of reference files whose inputs and parameters to reuse")
    ap.add_argument("--check", action="store_true", help="with --params-from: compare instead of writing")
    ap.add_argument("--mnist", default=str(ROOT / "data/mnist"))
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    worst_all = 0.0
    for preset in ("classic", "modern"):
        name = f"lenet5-{preset}-reference.safetensors"
        if args.params_from:
            given, _ = read_safetensors(Path(args.params_from) / name)
            x, labels = given["input"], given["labels"]
            params = {k[len("param."):]: v for k, v in given.items() if k.startswith("param.")}
        else:
            x, labels = first_images(args.mnist)
            params = fan_in_params(preset, torch.Generator().manual_seed(args.seed + (preset == "modern")))
        out = reference(preset, params, x, labels)
        if args.check:
            assert set(out) == set(given), sorted(set(out) ^ set(given))
            worst = max(((out[k] - given[k]).abs().max() / given[k].abs().max().clamp(min=1e-300)).item() for k in out)
            worst_all = max(worst_all, worst)
            print(f"{name}: {len(out)} tensors, largest relative difference {worst:.3e}")
            continue
        meta = dict(META[preset], batch=str(len(labels)), images="the first 4 MNIST training images", dtype="f64",
                    made_by=f"PyTorch autograd, f64 (torch {torch.__version__}, numpy {np.__version__}; "
                            "xtask/reference/lenet5_reference.py)")
        if not args.params_from:
            meta["params"] = f"fan-in rule uniform(-2.4/F, 2.4/F), torch.Generator seed {args.seed + (preset == 'modern')}"
        Path(args.out).mkdir(parents=True, exist_ok=True)
        write_safetensors(Path(args.out) / name, out, meta)
        print(f"wrote {Path(args.out) / name} ({len(out)} tensors, loss {out['loss'].item():.6f})")
    if args.check and worst_all > 1e-9:
        sys.exit(f"the recomputed values differ from the files by {worst_all:.3e} (relative): not the same computation")


if __name__ == "__main__":
    main()
