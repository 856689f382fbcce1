#!/usr/bin/python3
"""PyTorch's DistributedDataParallel on the same case as bench_ddp: config (b)
of bench_train (784-512-512-10 relu, SGD, f32), global batch 128, one thread
per process, gloo over shared memory on this machine. A reference only
(Debian's python3-torch); nothing in cgrad needs it.

    /usr/bin/python3 bench/torch_ddp.py [--reps N] [--rounds N] [--ranks 2] [--json]

Cases, interleaved in rounds as bench_ddp's: "single" (one process, batch
128), "share" (one process, batch 128 / ranks), "ddp" (ranks processes,
batch 128 / ranks each, DDP's default buckets). PyTorch runs with the strong
baseline of torch_compare.py (BLIS_NUM_THREADS=1, glibc's malloc thresholds
raised, BLIS's skx kernels as cgrad chooses)."""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_compare  # noqa: E402  (its baseline environment)

GLOBAL_BATCH = 128


def setup(batch, first):
    import torch
    torch.manual_seed(1)
    m = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(),
                            torch.nn.Linear(512, 512), torch.nn.ReLU(),
                            torch.nn.Linear(512, 10))
    g = torch.Generator().manual_seed(2)
    x = torch.randn(GLOBAL_BATCH, 784, generator=g)[first:first + batch].contiguous()
    y = torch.randint(0, 10, (GLOBAL_BATCH,), generator=g)[first:first + batch].contiguous()
    return m, x, y


def time_steps(m, x, y, reps):
    import torch
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    times = []
    for i in range(reps + 5):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss_fn(m(x), y).backward()
        opt.step()
        if i >= 5:
            times.append(time.perf_counter() - t0)
    return times


def worker(rank, ranks, reps, path, out):
    import torch
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=ranks)
    batch = GLOBAL_BATCH // ranks
    m, x, y = setup(batch, rank * batch)
    ddp = torch.nn.parallel.DistributedDataParallel(m)
    times = time_steps(ddp, x, y, reps)
    if rank == 0:
        out.put(times)
    dist.barrier()
    dist.destroy_process_group()


def run_ddp(ranks, reps):
    import tempfile
    import torch.multiprocessing as mp
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    fd, path = tempfile.mkstemp(prefix="cgrad_torch_ddp_")
    os.close(fd)
    os.unlink(path)
    procs = [ctx.Process(target=worker, args=(r, ranks, reps, path, out)) for r in range(ranks)]
    for p in procs:
        p.start()
    times = out.get()
    for p in procs:
        p.join()
    if os.path.exists(path):
        os.unlink(path)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch_compare.reexec_strong(1)
    blas = torch_compare.choose_torch_blas("same")
    import torch
    torch.set_num_threads(1)
    cases = {"single": [], "share": [], "ddp": []}
    for _ in range(a.rounds):
        cases["single"] += time_steps(*setup(GLOBAL_BATCH, 0), a.reps)
        cases["share"] += time_steps(*setup(GLOBAL_BATCH // a.ranks, 0), a.reps)
        cases["ddp"] += run_ddp(a.ranks, a.reps)
    med = {k: statistics.median(v) * 1e3 for k, v in cases.items()}
    if a.json:
        print(json.dumps({"bench": "torch_ddp", "ranks": a.ranks, "blas": blas,
                          **{k + "_ms": v for k, v in med.items()},
                          "speedup": med["single"] / med["ddp"],
                          "speedup_bound": med["single"] / med["share"]}))
        return
    print(f"torch {torch.__version__}, {blas}")
    for k, v in med.items():
        print(f"torch_ddp {k:7s} median {v:8.3f} ms (n {len(cases[k])})")
    print(f"torch_ddp speedup {med['single'] / med['ddp']:.2f}x at {a.ranks} ranks "
          f"(bound with free communication {med['single'] / med['share']:.2f}x)")


if __name__ == "__main__":
    main()
