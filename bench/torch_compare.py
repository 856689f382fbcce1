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
      int64 labels). Median ms per step. (a)-(e) are MLPs, (f) ggml's MNIST
      CNN and (g) LeNet-5 on [B, 1, 28, 28] inputs; (f) also reports its peak
      RSS (ru_maxrss of a child process that runs (f) alone).

The strong baseline (the default; --baseline plain for the old one): PyTorch
runs with BLIS_NUM_THREADS and OMP_NUM_THREADS set to the thread count
(Debian's PyTorch does its GEMMs in BLIS, which takes its thread count only
from BLIS_NUM_THREADS in the environment, not from torch.set_num_threads) and
with GLIBC_TUNABLES raising glibc's mmap and trim thresholds (otherwise glibc
returns freed tensor memory to the kernel and PyTorch page-faults it back in
every step). Both are read at process start, so the script re-executes itself
with them set; the cgrad binaries get the caller's environment.

Same BLAS kernels: Debian's PyTorch does its matrix products in the system
BLAS (libblas.so.3, which Debian's alternatives point at BLIS once libblis is
installed). BLIS 0.9 does not recognise some AVX-512 CPUs (AMD Zen 5) and
falls back to its generic kernels there, 5x slower; cgrad then selects BLIS's
skx kernels (tensor/gemm.c). So that the table compares the engines and not
the kernels, this script gives PyTorch the same choice: it sets
BLIS_ARCH_TYPE as cgrad would, unless it is set already or --torch-blas
default asks for PyTorch exactly as installed.

Usage: /usr/bin/python3 bench/torch_compare.py [--threads N] [--quick] [--json]
           [--skip-cgrad] [--torch-blas same|default] [--baseline strong|plain]
           [--cases a,b,...,g,autograd] [--rounds N]
--quick runs a few steps only: a smoke test, not a measurement. Run it on an
otherwise idle machine: two benchmarks side by side spoil both. --rounds N
runs both sides N times in turn (cgrad, PyTorch, cgrad, ...) and prints each
side's median: on a VM whose speed drifts between minutes, the two halves of
one round can see different machines.
"""
import argparse
import json
import math
import os
import resource
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
# arch: "mlp" (Linear layers of sizes), "ggml_cnn" or "lenet5" (inputs [B, 1, 28, 28]).
Config = namedtuple("Config", "name what sizes relu optim lr batch accum loss arch",
                    defaults=("mlp",))
CONFIGS = [  # name, what, sizes, relu, optimizer, lr, batch, accum, loss[, arch]
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
    Config("f", "ggml MNIST CNN, AdamW, batch 1000 = 2 x 500",
           (784, 10), True, "adamw", 1e-3, 500, 2, "ce", "ggml_cnn"),
    Config("g", "LeNet-5, Adam, batch 128",
           (784, 10), True, "adam", 1e-3, 128, 1, "ce", "lenet5"),
    # GPTs: sizes = (layers, heads, width, vocab, context); inputs random ids [B, T]
    Config("h", "GPT small 4x4x256, T 128, AdamW, batch 8",
           (4, 4, 256, 128, 128), False, "adamw", 1e-3, 8, 1, "ce", "gpt"),
    Config("i", "GPT medium 6x6x384, T 256, AdamW, batch 8",
           (6, 6, 384, 128, 256), False, "adamw", 1e-3, 8, 1, "ce", "gpt"),
]
RSS_CASES = {"f", "i"}  # peak RSS reported beside the step time
AUTOGRAD_CASES = ["forward", "forward+backward", "no_grad forward"]
CHAIN = 100  # ops per chain, as bench_autograd.c

# Targets of the bench issue: cgrad/PyTorch step-time ratios, and an absolute
# bound on cgrad's autograd overhead.
RATIO_TARGETS = {"a": 0.35, "c": 0.15, "d": 0.05, "f": 0.35, "g": 0.5, "h": 0.75, "i": 0.75}
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
def ggml_cnn(nn):
    """The CNN of ggml's MNIST example; [B, 1, 28, 28] -> [B, 10]."""
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(784, 10))


def lenet5(nn):
    """LeNet-5 with ReLU and max pooling; [B, 1, 28, 28] -> [B, 10]. Its state_dict
    names (0., 3., 7., 9., 11.) are those of cgrad's LeNet-5 checkpoints."""
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


def gpt(torch, layers, heads, width, vocab, context):
    """cg_nn_gpt written plainly (the twin of bench_train's (h) and (i)): pre-LayerNorm
    blocks, attention as matmul, causal mask, softmax, matmul (PyTorch 1.13 has no fused
    CPU attention), GELU with the tanh approximation, a head tied to the token
    embedding; ids [B, T] -> logits [B, T, V]."""
    nn, F = torch.nn, torch.nn.functional

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
            self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
            self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(approximate="tanh"),
                                     nn.Linear(4 * width, width))

        def forward(self, x):
            b, t, e = x.shape
            q, k, v = self.qkv(self.ln_1(x)).split(e, dim=2)
            q, k, v = (z.view(b, t, heads, e // heads).transpose(1, 2) for z in (q, k, v))
            s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(e // heads))
            mask = torch.ones(t, t, dtype=torch.bool).triu(1)
            a = F.softmax(s.masked_fill(mask, float("-inf")), dim=-1) @ v
            x = x + self.proj(a.transpose(1, 2).reshape(b, t, e))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok_emb, self.pos_emb = nn.Embedding(vocab, width), nn.Embedding(context, width)
            self.blocks = nn.Sequential(*[Block() for _ in range(layers)])
            self.ln_f = nn.LayerNorm(width)
            self.head = nn.Linear(width, vocab, bias=False)
            self.head.weight = self.tok_emb.weight

        def forward(self, ids):
            x = self.tok_emb(ids) + self.pos_emb(torch.arange(ids.shape[1]))
            return self.head(self.ln_f(self.blocks(x))).view(-1, vocab)

    return GPT()


def torch_model(torch, cfg):
    """cfg.arch's CNN or GPT, or Linear layers of cfg.sizes with ReLU between them when
    cfg.relu."""
    if cfg.arch == "gpt":
        return gpt(torch, *cfg.sizes)
    if cfg.arch != "mlp":
        return {"ggml_cnn": ggml_cnn, "lenet5": lenet5}[cfg.arch](torch.nn)
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
        if cfg.arch == "gpt":  # ids [B, T], next ids [B T]
            vocab, t = cfg.sizes[3], cfg.sizes[4]
            x = torch.randint(0, vocab, (cfg.batch, t), generator=g, dtype=torch.int64)
            y = torch.randint(0, vocab, (cfg.batch * t,), generator=g, dtype=torch.int64)
            batches.append((x, y))
            continue
        shape = (cfg.batch, cfg.sizes[0]) if cfg.arch == "mlp" else (cfg.batch, 1, 28, 28)
        x = torch.randn(*shape, generator=g)
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
    if cfg.arch == "gpt":
        return (1, 2) if quick else (3, 10)
    if quick:
        return (2, 3) if cfg.accum > 1 else (3, 10)
    if cfg.accum > 1:
        return 5, 40
    return (20, 100) if cfg.batch >= 128 else (20, 200)


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_child_case(torch, args):
    """--child-case NAME: times that configuration alone in this fresh process and
    prints one JSON line with its step time and this process's peak RSS."""
    cfg = next(c for c in CONFIGS if c.name == args.child_case)
    torch.set_num_threads(args.threads)
    before = peak_rss_mib()  # the interpreter and PyTorch's libraries
    ms = torch_train(torch, cfg, *train_steps(cfg, args.quick))
    print(json.dumps({"case": cfg.name, "step_ms": ms, "peak_rss_mib": peak_rss_mib(),
                      "rss_before_mib": before}))
    return 0


def torch_in_child(cfg, args):
    """{key: value} of cfg run alone in a child process of this script (same
    environment), so that its ru_maxrss is this case's peak RSS."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child-case", cfg.name,
           "--threads", str(args.threads)] + (["--quick"] if args.quick else [])
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            return {("train", cfg.name): r["step_ms"], ("rss", cfg.name): r["peak_rss_mib"],
                    ("rss_before", cfg.name): r["rss_before_mib"]}
    print(f"  PyTorch ({cfg.name}) in a child process: exit {p.returncode}: "
          f"{p.stderr.strip()[-300:]}")
    return {}


def run_torch(torch, args):
    reps, inner = (3, 20) if args.quick else (31, 200)
    res = {}
    if "autograd" in args.cases:
        for case in AUTOGRAD_CASES:
            res[("autograd", case)] = torch_autograd(torch, case, inner, reps)
    for cfg in CONFIGS:
        if cfg.name not in args.cases:
            continue
        if cfg.name in RSS_CASES:
            res.update(torch_in_child(cfg, args))
        else:
            res[("train", cfg.name)] = torch_train(torch, cfg, *train_steps(cfg, args.quick))
    return res


# ---- cgrad: the bench binaries' JSON lines ---------------------------------------------------
def run_binary(name, extra):
    """(JSON objects printed, problem or None). A missing binary is 'not built'.
    It runs in the caller's environment, not the strong baseline's."""
    path = BIN / name
    if not path.exists():
        return [], "not built"
    try:
        p = subprocess.run([str(path), "--json", *extra], capture_output=True, text=True,
                           check=False, env=caller_env())
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
    """{(kind, case): value} and {binary: problem}. bench_train's JSON lines pair
    with PyTorch's cases by "config" (a-g); (f)'s peak RSS is read from
    "peak_rss_kb" or "peak_rss_mib" when bench_train prints one."""
    threads = ["--threads", str(args.threads)]
    res, problems = {}, {}
    if "autograd" in args.cases:
        rows, problems["bench_autograd"] = run_binary(
            "bench_autograd", threads + (["--reps", "3"] if args.quick else []))
        for r in rows:
            if "case" in r and "ns_per_op" in r:
                res[("autograd", r["case"])] = float(r["ns_per_op"])
    configs = [c.name for c in CONFIGS if c.name in args.cases]
    rows, problems["bench_train"] = (run_binary(
        "bench_train", threads + ["--config", ",".join(configs)]
        + (["--reps", "10"] if args.quick else [])) if configs else ([], None))
    for r in rows:
        if "config" in r and "step_ms" in r:
            res[("train", r["config"])] = float(r["step_ms"])
        if "config" in r and "peak_rss_kb" in r:
            res[("rss", r["config"])] = float(r["peak_rss_kb"]) / 1024
        elif "config" in r and "peak_rss_mib" in r:
            res[("rss", r["config"])] = float(r["peak_rss_mib"])
    return res, problems


def medians(runs):
    """{key: median over the runs that have it} of a list of {key: value}."""
    keys = {k for r in runs for k in r}
    return {k: statistics.median(r[k] for r in runs if k in r) for k in keys}


# ---- the table -------------------------------------------------------------------------------
def table_rows(cg, th, threads, notes, cases):
    """One dict per case, in the order printed; notes[kind] stands in for a
    missing cgrad figure ("not built", "skipped", "-")."""
    rows = []
    for case in AUTOGRAD_CASES if "autograd" in cases else []:
        key = ("autograd", case)
        limit = AUTOGRAD_TARGET_NS.get(case)
        rows.append(dict(key=key, label=f"autograd {case}", unit="ns/op", cgrad=cg.get(key),
                         torch=th.get(key), target_kind="cgrad_ns" if limit else None,
                         target=limit, note=notes["autograd"]))
    for cfg in (c for c in CONFIGS if c.name in cases):
        key = ("train", cfg.name)
        limit = ratio_target(cfg.name, threads)
        rows.append(dict(key=key, label=f"({cfg.name}) {cfg.what}", unit="ms/step",
                         cgrad=cg.get(key), torch=th.get(key),
                         target_kind="ratio" if limit else None, target=limit,
                         note=notes["train"]))
        if cfg.name in RSS_CASES:
            key = ("rss", cfg.name)
            rows.append(dict(key=key, label=f"({cfg.name}) peak RSS of the process", unit="MiB",
                             cgrad=cg.get(key), torch=th.get(key), target_kind=None,
                             target=None, note=notes["train"]))
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


def print_json(rows, threads, version, baseline):
    for r in rows:
        def rnd(v):
            return None if v is None else round(v, 4)
        out = {"bench": "compare", "kind": r["key"][0], "case": r["key"][1],
               "unit": r["unit"], "cgrad": rnd(r["cgrad"]), "torch": rnd(r["torch"]),
               "ratio": rnd(r["ratio"]), "target_kind": r["target_kind"], "target": r["target"],
               "met": r["met"], "threads": threads, "torch_version": version,
               "baseline": baseline}
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


# ---- the strong baseline: PyTorch's environment ---------------------------------------------
STRONG_MALLOC = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967295"
STRONG_VARS = ("BLIS_NUM_THREADS", "OMP_NUM_THREADS", "GLIBC_TUNABLES")
CALLER_ENV = "CGRAD_TORCH_COMPARE_CALLER_ENV"  # the caller's values of STRONG_VARS, as JSON


def reexec_strong(threads):
    """Re-executes this script once with the strong baseline's environment: BLIS
    and glibc read these variables only at process start. Returns only when the
    environment is set already."""
    if CALLER_ENV in os.environ:
        return
    env = dict(os.environ)
    env[CALLER_ENV] = json.dumps({k: os.environ.get(k) for k in STRONG_VARS})
    env.update(BLIS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               GLIBC_TUNABLES=STRONG_MALLOC)
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def caller_env():
    """The environment this script was started with (for the cgrad binaries)."""
    env = dict(os.environ)
    for k, v in json.loads(env.pop(CALLER_ENV, "{}")).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def describe_baseline(args):
    if args.baseline == "strong":
        settings = " ".join(f"{k}={os.environ.get(k, '(unset)')}" for k in STRONG_VARS)
        return f"strong PyTorch baseline: {settings}"
    return ("plain PyTorch baseline (--baseline plain): the caller's environment, BLIS on one "
            "thread unless BLIS_NUM_THREADS is set, glibc's default malloc thresholds")


# ---- main ------------------------------------------------------------------------------------
def cgrad_notes(args, problems):
    """What the cgrad column shows when a figure is missing, per kind of case."""
    def note(binary):
        if args.skip_cgrad:
            return "skipped"
        return "not built" if problems.get(binary) == "not built" else "-"
    return {"autograd": note("bench_autograd"), "train": note("bench_train")}


ALL_CASES = ["autograd"] + [c.name for c in CONFIGS]


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
    ap.add_argument("--baseline", choices=("strong", "plain"), default="strong",
                    help="strong: PyTorch with BLIS_NUM_THREADS, OMP_NUM_THREADS and glibc "
                    "malloc thresholds set (default); plain: the caller's environment")
    ap.add_argument("--cases", default=",".join(ALL_CASES),
                    help=f"comma-separated subset of {','.join(ALL_CASES)} (default: all)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="both sides this many times in turn; each side's median (default 1)")
    ap.add_argument("--child-case", help=argparse.SUPPRESS)  # internal: one case, peak RSS
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error(f"--rounds {args.rounds}: need at least 1")
    args.cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in args.cases if c not in ALL_CASES]
    if unknown:
        ap.error(f"unknown case(s) {','.join(unknown)}; known: {','.join(ALL_CASES)}")
    return args


def main():
    args = parse_args()
    if args.baseline == "strong" and not args.child_case:
        reexec_strong(args.threads)
    blas = choose_torch_blas(args.torch_blas)  # before BLIS starts in this process
    try:
        import torch
    except ImportError as e:
        print(f"torch_compare: PyTorch is not importable ({e}); install Debian's "
              "python3-torch to compare. Skipped.")
        return 0
    if args.child_case:
        return run_child_case(torch, args)
    # cgrad first: it runs before this process has started any PyTorch threads.
    cgs, ths, problems = [], [], {}
    for _ in range(args.rounds):
        cg, problems = ({}, {}) if args.skip_cgrad else run_cgrad(args)
        torch.set_num_threads(args.threads)
        cgs.append(cg)
        ths.append(run_torch(torch, args))
    cg, th = medians(cgs), medians(ths)
    print(f"PyTorch {torch.__version__} and cgrad, {args.threads} thread(s)"
          + (f", medians of {args.rounds} rounds in turn" if args.rounds > 1 else "")
          + ("; --quick: a smoke test, not a measurement" if args.quick else ""))
    print(f"PyTorch's BLAS: {blas}")
    print(f"Baseline: {describe_baseline(args)}")
    for name, problem in problems.items():
        if problem and problem != "not built":
            print(f"  {name}: {problem}")
    rows = table_rows(cg, th, args.threads, cgrad_notes(args, problems), args.cases)
    print_table(rows)
    for name in RSS_CASES:
        if ("rss_before", name) in th:
            print(f"PyTorch's ({name}) process held {th[('rss_before', name)]:.0f} MiB "
                  "(interpreter and libraries) before its first step")
    if args.json:
        print_json(rows, args.threads, torch.__version__, args.baseline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
