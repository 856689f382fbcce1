"""Optional cross-check with PyTorch (Debian's python3-torch; never a dependency).

1. Loads a cgrad checkpoint into the equivalent torch.nn.Sequential with
   load_state_dict(strict=True) and prints its Fashion-MNIST test accuracy, to
   compare with what the cgrad example printed. The model is read off the
   checkpoint: a 4-d "0.weight" is LeNet-5 (examples/lenet5), otherwise the MLP
   of fashion_mlp (Linear layers 0, 2, 4, ... with ReLU between them).
2. Writes the PyTorch model's state_dict the way safetensors.torch.save_file
   does (sorted keys, space-padded header), for `fashion_mlp --load FILE
   --epochs 0` or its LeNet-5 counterpart.

LeNet-5's state_dict names are those of this nn.Sequential:
  0 Conv2d(1, 6, 5, padding=2)  1 ReLU  2 MaxPool2d(2)
  3 Conv2d(6, 16, 5)            4 ReLU  5 MaxPool2d(2)  6 Flatten
  7 Linear(400, 120)  8 ReLU  9 Linear(120, 84)  10 ReLU  11 Linear(84, 10)
so "0.weight" [6,1,5,5], "0.bias", "3.weight" [16,6,5,5], "3.bias", "7.weight"
[120,400], ..., "11.bias" [10]. Inputs are [N, 1, 28, 28] pixels / 255, unless
--normalize MEAN,STD says the example standardised them.

The safetensors format is read and written here with json and struct only,
because Debian has no python3-safetensors package; the IDX files with gzip and
numpy (no torchvision).

usage: /usr/bin/python3 bench/torch_checkpoint.py CGRAD_FILE [TORCH_OUT_FILE]
                                                 [--normalize MEAN,STD]
       /usr/bin/python3 bench/torch_checkpoint.py --self-test DIR [--steps N]
  --self-test trains a LeNet-5 in PyTorch for N steps (default 300), saves it
  to DIR/lenet5_torch.safetensors, loads it back as a cgrad checkpoint would be
  and checks that the tensors and the test accuracy are identical.
"""
import argparse
import gzip
import json
import struct
import sys

import numpy as np
import torch

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}
DATA = "/usr/share/datasets/fashion-mnist"


# ---- safetensors ----------------------------------------------------------------------------
def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    data = raw[8 + n:]
    out = {}
    for key, e in header.items():
        b, t = e["data_offsets"]
        out[key] = torch.frombuffer(bytearray(data[b:t]),
                                    dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
    return out


def save_safetensors(path, tensors):
    names = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}
    header, blobs, off = {}, [], 0
    for key in sorted(tensors):
        t = tensors[key].detach().contiguous()
        blob = t.numpy().tobytes()
        header[key] = {"dtype": names[t.dtype], "shape": list(t.shape),
                       "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


# ---- Fashion-MNIST (IDX files, gzip + numpy) --------------------------------------------------
def read_idx(path):
    """An IDX file as a numpy array of its shape (big-endian header: 0, 0, type 0x08
    for uint8, number of dimensions, then one u32 per dimension)."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, kind, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or kind != 0x08:
        raise ValueError(f"{path}: not an IDX file of uint8 (magic {raw[:4].hex()})")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion(split, shape, normalize=None):
    """(x float32 of [N, *shape], labels int64 [N]) for split "train" or "t10k"."""
    img = read_idx(f"{DATA}/{split}-images-idx3-ubyte.gz").astype(np.float32) / 255
    if normalize:
        img = (img - normalize[0]) / normalize[1]
    lab = read_idx(f"{DATA}/{split}-labels-idx1-ubyte.gz").astype(np.int64)
    return torch.from_numpy(img.reshape(-1, *shape)), torch.from_numpy(lab)


# ---- the models ---------------------------------------------------------------------------
def lenet5():
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


def mlp_for(state):
    """fashion_mlp's MLP with the sizes of the checkpoint's Linear layers 0, 2, 4, ..."""
    linear = sorted({int(k.split(".")[0]) for k in state})
    sizes = [state[f"{linear[0]}.weight"].shape[1]] + [state[f"{i}.weight"].shape[0]
                                                       for i in linear]
    layers = []
    for i in range(len(sizes) - 1):
        layers += [torch.nn.Linear(sizes[i], sizes[i + 1]), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def model_for(state):
    """(model, input shape of one image) matching the checkpoint's tensors."""
    if state["0.weight"].dim() == 4:
        return lenet5(), (1, 28, 28)
    return mlp_for(state), (784,)


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def load_model(path, normalize):
    """(model loaded strictly from a checkpoint, its test accuracy); optimizer
    state in the file is ignored."""
    state = {k: v for k, v in load_safetensors(path).items() if not k.startswith("optimizer.")}
    model, shape = model_for(state)
    model.load_state_dict(state, strict=True)
    x, y = fashion("t10k", shape, normalize)
    return model, accuracy(model, x, y)


# ---- self-test: a PyTorch LeNet-5 through the same path ---------------------------------------
def self_test(out_dir, steps):
    """Trains LeNet-5 briefly, saves, reloads as a cgrad checkpoint; 0 when the
    reloaded tensors are bitwise equal and the accuracy identical."""
    torch.manual_seed(1)
    model = lenet5()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = fashion("train", (1, 28, 28))
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        i = torch.randint(0, x.shape[0], (128,), generator=g)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[i]), y[i]).backward()
        opt.step()
    xt, yt = fashion("t10k", (1, 28, 28))
    acc = accuracy(model, xt, yt)
    path = f"{out_dir}/lenet5_torch.safetensors"
    save_safetensors(path, model.state_dict())
    again, acc2 = load_model(path, None)
    same = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                  again.state_dict().values()))
    print(f"self-test: LeNet-5 after {steps} Adam steps, test accuracy {acc:.4f}; saved to "
          f"{path}, reloaded strictly: accuracy {acc2:.4f}, tensors "
          f"{'bitwise equal' if same else 'DIFFERENT'}")
    return 0 if same and acc == acc2 else 1


def main():
    ap = argparse.ArgumentParser(description="Load a cgrad checkpoint in PyTorch, report its "
                                 "Fashion-MNIST test accuracy, write PyTorch's state_dict back.")
    ap.add_argument("cgrad_file", nargs="?")
    ap.add_argument("torch_out_file", nargs="?")
    ap.add_argument("--normalize", help="MEAN,STD applied to pixels / 255 (default: none)")
    ap.add_argument("--self-test", metavar="DIR", help="PyTorch LeNet-5 save/reload check")
    ap.add_argument("--steps", type=int, default=300, help="--self-test's training steps")
    args = ap.parse_args()
    if args.self_test:
        return self_test(args.self_test, args.steps)
    if not args.cgrad_file:
        ap.error("a checkpoint file, or --self-test DIR")
    normalize = [float(v) for v in args.normalize.split(",")] if args.normalize else None
    model, acc = load_model(args.cgrad_file, normalize)
    kind = "LeNet-5" if isinstance(model[0], torch.nn.Conv2d) else "MLP"
    print(f"PyTorch {torch.__version__}: cgrad checkpoint {args.cgrad_file} ({kind}) loaded "
          f"strictly, test accuracy {acc:.4f}")
    if args.torch_out_file:
        save_safetensors(args.torch_out_file, model.state_dict())
        print(f"wrote the PyTorch state_dict to {args.torch_out_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
