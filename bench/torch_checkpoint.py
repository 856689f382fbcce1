"""Optional cross-check with PyTorch (Debian's python3-torch; never a dependency).

1. Loads a cgrad checkpoint of the Fashion-MNIST MLP into the equivalent
   torch.nn.Sequential with load_state_dict(strict=True) and prints its test
   accuracy, to compare with what fashion_mlp printed.
2. Writes a PyTorch model's state_dict the way safetensors.torch.save_file does
   (sorted keys, space-padded header), for `fashion_mlp --load FILE --epochs 0`.

The safetensors format is read and written here with json and struct only,
because Debian has no python3-safetensors package.

usage: /usr/bin/python3 bench/torch_checkpoint.py CGRAD_FILE [TORCH_OUT_FILE]
"""
import gzip
import json
import struct
import sys

import torch

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}
DATA = "/usr/share/datasets/fashion-mnist"


def load_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    data = raw[8 + n:]
    out = {}
    for key, e in header.items():
        b, t = e["data_offsets"]
        out[key] = torch.frombuffer(bytearray(data[b:t]), dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
    return out


def save_safetensors(path, tensors):
    names = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}
    header, blobs, off = {}, [], 0
    for key in sorted(tensors):
        t = tensors[key].contiguous()
        blob = t.numpy().tobytes()
        header[key] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def test_set():
    img = gzip.open(f"{DATA}/t10k-images-idx3-ubyte.gz").read()[16:]
    lab = gzip.open(f"{DATA}/t10k-labels-idx1-ubyte.gz").read()[8:]
    x = torch.frombuffer(bytearray(img), dtype=torch.uint8).float().reshape(-1, 784) / 255
    return x, torch.frombuffer(bytearray(lab), dtype=torch.uint8).long()


def main():
    state = {k: v for k, v in load_safetensors(sys.argv[1]).items() if not k.startswith("optimizer.")}
    linear = sorted({int(k.split(".")[0]) for k in state})  # 0, 2, 4, ...
    sizes = [state[f"{linear[0]}.weight"].shape[1]] + [state[f"{i}.weight"].shape[0] for i in linear]
    layers = []
    for i in range(len(sizes) - 1):
        layers += [torch.nn.Linear(sizes[i], sizes[i + 1]), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    model.load_state_dict(state, strict=True)
    x, y = test_set()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    print(f"PyTorch {torch.__version__}: cgrad checkpoint {sys.argv[1]} loaded strictly, "
          f"test accuracy {acc:.4f}")
    if len(sys.argv) > 2:
        save_safetensors(sys.argv[2], model.state_dict())
        print(f"wrote the PyTorch state_dict to {sys.argv[2]}")


if __name__ == "__main__":
    main()
