#!/usr/bin/python3
"""cgrad against PyTorch, side by side (make bench-compare).

Times in PyTorch (Debian's python3-torch; optional: without it this says so
and exits 0) the cases the cgrad benches time, then runs the cgrad binaries
with --json and prints one table: case, cgrad, PyTorch, cgrad/PyTorch and the
issue's target where there is one (met / missed).

  autograd overhead (bench_autograd): a chain of 100 one-element f32 ops,
      alternating mul and add, on 3 leaf parameters; forward with grad on,
      forward + backward, forward under no_grad. Median ns per op.
  training steps (bench_train): zero_grad, forward, loss, backward,
      optimizer step, on random data made once (fixed seed, f32 inputs,
      int64 labels). Median ms per step.

Same BLAS kernels: Debian's PyTorch does its matrix products in the system
BLAS (libblas.so.3, which Debian's alternatives point at BLIS once libblis is
installed). BLIS 0.9 does not recognise some AVX-512 CPUs (AMD Zen 5) and
falls back to its generic kernels there, 5x slower; cgrad then selects BLIS's
skx kernels (tensor/gemm.c). So that the table compares the engines and not
the kernels, this script gives PyTorch the same choice: it sets
BLIS_ARCH_TYPE as cgrad would, unless it is set already or --torch-blas
default asks for PyTorch exactly as installed.

Usage: /usr/bin/python3 bench/torch_compare.py [--threads N] [--quick] [--json]
                                              [--skip-cgrad] [--torch-blas same|default]
--quick runs a few steps only: a smoke test, not a measurement. Run it on an
otherwise idle machine: two benchmarks side by side spoil both.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "build" / "rel" / "bench"
DEFAULT_THREADS = 2  # cgrad's default on the 2-core development machine

# ---- the configurations (as bench/bench_train.c) ---------------------------------------------
Config = namedtuple("Config", "name what sizes relu optim lr batch accum loss")
CONFIGS = [  # name, what, sizes, relu, optimizer, lr, batch, accum, loss
    Config("a", "784-128-10 relu, Adam, batch 32",
           (784, 128, 10), True, "adam", 1e-3, 32, 1, "ce"),
    Config("b", "784-512-512-10 relu, SGD, batch 128",
           (784, 512, 512, 10), True, "sgd", 0.1, 128, 1, "ce"),
    Config("c", "100-64-10 relu, SGD, batch 32",
           (100, 64, 10), True, "sgd", 0.1, 32, 1, "ce"),
    Config("d", "two Linear(1,1), MSE, SGD, batch 4",
           (1, 1, 1), False, "sgd", 0.01, 4, 1, "mse"),
    Config("e", "784-500-10 relu, AdamW, batch 2 x 500",
           (784, 500, 10), True, "adamw", 1e-3, 500, 2, "ce"),
]
AUTOGRAD_CASES = ["forward", "forward+backward", "no_grad forward"]
CHAIN = 100  # ops per chain, as bench_autograd.c

# Targets of the bench issue: cgrad/PyTorch step-time ratios, and an absolute
# bound on cgrad's autograd overhead.
RATIO_TARGETS = {"a": 0.35, "c": 0.15, "d": 0.05}
B_TARGET = {1: 0.85, 2: 1.0}  # (b) depends on the thread count
AUTOGRAD_TARGET_NS = {"forward+backward": 300.0}


def ratio_target(config, threads):
    return B_TARGET.get(threads) if config == "b" else RATIO_TARGETS.get(config)


# ---- PyTorch: autograd overhead --------------------------------------------------------------
def torch_autograd(torch, case, inner, reps):
    """Median ns per op of `inner` chains per sample, after one warm-up sample."""
    x, w, b = (torch.full((1,), 0.5 + 0.25 * i, requires_grad=True) for i in range(3))

    def chain():
        y = x
        for _ in range(0, CHAIN, 2):
            y = y * w + b
        return y

    def one():
        if case == "no_grad forward":
            with torch.no_grad():
                chain()
        elif case == "forward":
            chain()
        else:
            chain().backward()

    def sample():
        t = time.perf_counter()
        for _ in range(inner):
            one()
        return (time.perf_counter() - t) / (inner * CHAIN) * 1e9

    sample()
    return statistics.median(sample() for _ in range(reps))


# ---- PyTorch: training steps -----------------------------------------------------------------
def torch_model(torch, cfg):
    """Linear layers of cfg.sizes, with ReLU between them when cfg.relu."""
    layers = []
    for i in range(len(cfg.sizes) - 1):
        layers.append(torch.nn.Linear(cfg.sizes[i], cfg.sizes[i + 1]))
        if cfg.relu and i < len(cfg.sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def torch_optim(torch, cfg, params):
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
    return kind[cfg.optim](params, lr=cfg.lr)  # PyTorch's defaults otherwise, as cgrad's


def torch_batches(torch, cfg):
    g = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(cfg.accum):
        x = torch.randn(cfg.batch, cfg.sizes[0], generator=g)
        if cfg.loss == "mse":
            y = torch.randn(cfg.batch, cfg.sizes[-1], generator=g)
        else:
            y = torch.randint(0, cfg.sizes[-1], (cfg.batch,), generator=g, dtype=torch.int64)
        batches.append((x, y))
    return batches


def torch_train(torch, cfg, warmup, steps):
    """Median ms of a full step: zero_grad, forward, loss, backward (accum times), step."""
    torch.manual_seed(1)
    model = torch_model(torch, cfg)
    opt = torch_optim(torch, cfg, model.parameters())
    loss_fn = torch.nn.MSELoss() if cfg.loss == "mse" else torch.nn.CrossEntropyLoss()
    batches = torch_batches(torch, cfg)

    def step():
        t = time.perf_counter()
        opt.zero_grad(set_to_none=False)  # zeroes in place, as cg_optim_zero_grad
        for x, y in batches:
            loss_fn(model(x), y).backward()
        opt.step()
        return (time.perf_counter() - t) * 1e3

    for _ in range(warmup):
        step()
    return statistics.median(step() for _ in range(steps))


def train_steps(cfg, quick):
    """(warm-up, timed) steps: fewer for the big configurations."""
    if quick:
        return (2, 3) if cfg.accum > 1 else (3, 10)
    if cfg.accum > 1:
        return 5, 40
    return (20, 100) if cfg.batch >= 128 else (20, 200)


def run_torch(torch, args):
    reps, inner = (3, 20) if args.quick else (31, 200)
    res = {}
    for case in AUTOGRAD_CASES:
        res[("autograd", case)] = torch_autograd(torch, case, inner, reps)
    for cfg in CONFIGS:
        res[("train", cfg.name)] = torch_train(torch, cfg, *train_steps(cfg, args.quick))
    return res


# ---- cgrad: the bench binaries' JSON lines ---------------------------------------------------
def run_binary(name, extra):
    """(JSON objects printed, problem or None). A missing binary is 'not built'."""
    path = BIN / name
    if not path.exists():
        return [], "not built"
    try:
        p = subprocess.run([str(path), "--json", *extra], capture_output=True, text=True,
                           check=False)
    except OSError as e:
        return [], f"cannot run: {e}"
    rows = []
    for line in p.stdout.splitlines():
        if line.strip().startswith("{"):
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    problem = None if p.returncode == 0 else f"exit {p.returncode}: {p.stderr.strip()[:200]}"
    return rows, problem


def run_cgrad(args):
    """{(kind, case): value} and {binary: problem}."""
    threads = ["--threads", str(args.threads)]
    res, problems = {}, {}
    rows, problems["bench_autograd"] = run_binary(
        "bench_autograd", threads + (["--reps", "3"] if args.quick else []))
    for r in rows:
        if "case" in r and "ns_per_op" in r:
            res[("autograd", r["case"])] = float(r["ns_per_op"])
    rows, problems["bench_train"] = run_binary(
        "bench_train", threads + (["--reps", "10"] if args.quick else []))
    for r in rows:
        if "config" in r and "step_ms" in r:
            res[("train", r["config"])] = float(r["step_ms"])
    return res, problems


# ---- the table -------------------------------------------------------------------------------
def table_rows(cg, th, threads, notes):
    """One dict per case, in the order printed; notes[kind] stands in for a
    missing cgrad figure ("not built", "skipped", "-")."""
    rows = []
    for case in AUTOGRAD_CASES:
        key = ("autograd", case)
        limit = AUTOGRAD_TARGET_NS.get(case)
        rows.append(dict(key=key, label=f"autograd {case}", unit="ns/op", cgrad=cg.get(key),
                         torch=th.get(key), target_kind="cgrad_ns" if limit else None,
                         target=limit, note=notes["autograd"]))
    for cfg in CONFIGS:
        key = ("train", cfg.name)
        limit = ratio_target(cfg.name, threads)
        rows.append(dict(key=key, label=f"({cfg.name}) {cfg.what}", unit="ms/step",
                         cgrad=cg.get(key), torch=th.get(key),
                         target_kind="ratio" if limit else None, target=limit,
                         note=notes["train"]))
    for r in rows:
        r["ratio"] = r["cgrad"] / r["torch"] if r["cgrad"] and r["torch"] else None
        measured = r["cgrad"] if r["target_kind"] == "cgrad_ns" else r["ratio"]
        r["met"] = None if r["target"] is None or measured is None else measured <= r["target"]
    return rows


def fmt(v, missing):
    return f"{v:10.3f}" if v is not None else f"{missing:>10}"


def print_table(rows):
    print(f"{'case':<48} {'unit':<8} {'cgrad':>10} {'PyTorch':>10} {'cg/torch':>9}  target")
    for r in rows:
        ratio = f"{r['ratio']:9.3f}" if r["ratio"] is not None else f"{'-':>9}"
        if r["target"] is None:
            target = "-"
        elif r["target_kind"] == "ratio":
            target = f"ratio <= {r['target']:.2f}"
        else:
            target = f"cgrad <= {r['target']:.0f} ns"
        verdict = {True: "  met", False: "  MISSED", None: ""}[r["met"]]
        if r["target"] is not None and r["met"] is None:
            verdict = "  (no cgrad figure)"
        print(f"{r['label']:<48} {r['unit']:<8} {fmt(r['cgrad'], r['note'])} "
              f"{fmt(r['torch'], '-')} {ratio}  {target}{verdict}")


def print_json(rows, threads, version):
    for r in rows:
        def rnd(v):
            return None if v is None else round(v, 4)
        out = {"bench": "compare", "kind": r["key"][0], "case": r["key"][1],
               "unit": r["unit"], "cgrad": rnd(r["cgrad"]), "torch": rnd(r["torch"]),
               "ratio": rnd(r["ratio"]), "target_kind": r["target_kind"], "target": r["target"],
               "met": r["met"], "threads": threads, "torch_version": version}
        print(json.dumps(out, separators=(",", ":")))


# ---- the BLAS under PyTorch -------------------------------------------------------------------
SKX_NEEDS = ("avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl")  # as tensor/gemm.c
BLIS_ARCH_SKX = "0"  # arch_t's first value in BLIS 0.9's blis.h


def choose_torch_blas(mode):
    """Sets BLIS_ARCH_TYPE as cgrad's choose_kernels() would (mode "same", the
    variable unset, a CPU with skx's AVX-512 subsets); returns a description."""
    lib = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")
    if "BLIS_ARCH_TYPE" in os.environ:
        return f"{lib}, BLIS_ARCH_TYPE={os.environ['BLIS_ARCH_TYPE']} (set by the caller)"
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith("flags")), [])
    except OSError:
        flags = []
    if mode == "same" and "blis" in lib and all(f in flags for f in SKX_NEEDS):
        os.environ["BLIS_ARCH_TYPE"] = BLIS_ARCH_SKX
        return f"{lib}, BLIS_ARCH_TYPE={BLIS_ARCH_SKX} (skx kernels, as cgrad chooses)"
    return f"{lib}, as installed"


# ---- main ------------------------------------------------------------------------------------
def cgrad_notes(args, problems):
    """What the cgrad column shows when a figure is missing, per kind of case."""
    def note(binary):
        if args.skip_cgrad:
            return "skipped"
        return "not built" if problems.get(binary) == "not built" else "-"
    return {"autograd": note("bench_autograd"), "train": note("bench_train")}


def parse_args():
    ap = argparse.ArgumentParser(description="cgrad vs PyTorch: autograd overhead and "
                                 "training steps, side by side.")
    ap.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                    help=f"threads for both sides (default {DEFAULT_THREADS})")
    ap.add_argument("--quick", action="store_true", help="a few steps only (smoke test)")
    ap.add_argument("--json", action="store_true", help="also one JSON object per case")
    ap.add_argument("--skip-cgrad", action="store_true", help="time the PyTorch side only")
    ap.add_argument("--torch-blas", choices=("same", "default"), default="same",
                    help="same: PyTorch's BLIS gets the kernels cgrad picks (default); "
                    "default: PyTorch as installed")
    return ap.parse_args()


def main():
    args = parse_args()
    blas = choose_torch_blas(args.torch_blas)  # before BLIS starts in this process
    try:
        import torch
    except ImportError as e:
        print(f"torch_compare: PyTorch is not importable ({e}); install Debian's "
              "python3-torch to compare. Skipped.")
        return 0
    # cgrad first: it runs before this process has started any PyTorch threads.
    cg, problems = ({}, {}) if args.skip_cgrad else run_cgrad(args)
    torch.set_num_threads(args.threads)
    th = run_torch(torch, args)
    print(f"PyTorch {torch.__version__} and cgrad, {args.threads} thread(s)"
          + ("; --quick: a smoke test, not a measurement" if args.quick else ""))
    print(f"PyTorch's BLAS: {blas}")
    for name, problem in problems.items():
        if problem and problem != "not built":
            print(f"  {name}: {problem}")
    rows = table_rows(cg, th, args.threads, cgrad_notes(args, problems))
    print_table(rows)
    if args.json:
        print_json(rows, args.threads, torch.__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
