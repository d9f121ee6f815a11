#!/usr/bin/env python3
"""losskit against PyTorch on the CPU, side by side in one run, as one table.

Run in the reference environment, never in CI (it needs torch and a release build):

    cargo build --release
    ~/.cache/losskit-refenv/bin/python bench/compare_torch.py [--quick] [--ids mse,cross_entropy]
        [--threads 1,2] [--dtypes f32] [--sizes 1e6,4096x1000] [--json all.json] [--markdown]

What it runs:
  1. `target/release/losskit bench --stream`, the memory-bandwidth probe, once per thread count;
  2. then loss by loss, both sides one right after the other (the vCPUs' speed drifts over a
     run, and a ratio of two times taken minutes apart measures the drift as much as the code):
     a. `losskit bench --ids LOSS --json` in the default process environment, every case in the
        modes fwd, fwd_bwd and fwd_bwd_into (one process per thread count, so that the calls run
        on the main thread, as torch's do), and again (fwd, fwd_bwd) with glibc's allocator kept
        warm (GLIBC_TUNABLES=glibc.malloc.mmap_threshold=...:glibc.malloc.trim_threshold=..., so
        that freed buffers are reused instead of returned to the kernel and re-faulted);
     b. the nearest PyTorch counterpart of every case losskit ran (same loss, shape, dtype, value
        ranges, thread count via torch.set_num_threads), in two persistent workers (this script
        with `--worker-loop`), one per allocator regime: `fwd` = the loss, `fwd_bwd` =
        torch.autograd.grad of the reduced loss (allocating), with respect to the same arguments
        losskit returned gradients for;
  3. with `--rounds N`, step 2 N times, every other round torch first.
Then it prints one table: losskit and torch medians in both allocator regimes (over the rounds:
the median of the rounds' medians), the ratios torch / losskit (> 1: losskit is faster; over the
rounds: the median of each round's ratio) and losskit's fraction of the measured read bandwidth
(effective GB/s = min_bytes / median, over the stream probe's read GB/s at that thread count).
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WARM_TUNABLES = "glibc.malloc.mmap_threshold=2147483648:glibc.malloc.trim_threshold=4294967296"
ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------------------------
# timing (the same policy as `losskit bench`)


def measure(f, target_s, min_reps, max_reps=1_000_000):
    """Warm-up (>= 1 call, target_s / 5 seconds), then repetitions until target_s seconds and
    at least min_reps; returns (median, p10, p90, reps)."""
    start = time.perf_counter()
    f()
    while time.perf_counter() - start < target_s / 5:
        f()
    samples = []
    t0 = time.perf_counter()
    while True:
        a = time.perf_counter()
        f()
        samples.append(time.perf_counter() - a)
        if (len(samples) >= min_reps and time.perf_counter() - t0 >= target_s) or len(samples) >= max_reps:
            break
    samples.sort()
    n = len(samples)
    at = lambda q: samples[int(round((n - 1) * q))]  # noqa: E731
    median = samples[n // 2] if n % 2 else 0.5 * (samples[n // 2 - 1] + samples[n // 2])
    return median, at(0.1), at(0.9), n


# --------------------------------------------------------------------------------------------
# the torch side (worker)

# the options each losskit case runs with (bench.rs); the counterparts below assume them
EXPECTED_OPTIONS = {
    "cross_entropy@label_smoothing": "label_smoothing=0.1",
    "cross_entropy@probabilities": "target=probabilities",
    "log_softmax": "dim=1",
    "categorical_crossentropy": "from_logits=true",
    "sparse_categorical_crossentropy": "from_logits=true",
    "binary_crossentropy": "from_logits=true",
}


def torch_case(loss, shape, dtype, gen, variant=""):
    """Inputs (by losskit argument name, same value ranges as bench.rs), the torch function of
    them, and a description of the counterpart; None where there is none. `variant` names a
    second case of the same loss (bench.rs `ID@VARIANT`)."""
    import torch
    import torch.nn.functional as F

    def U(lo, hi):
        return torch.rand(shape, dtype=dtype, generator=gen) * (hi - lo) + lo

    def bits():
        return torch.randint(0, 2, shape, generator=gen).to(dtype)

    def classes():
        return torch.randint(0, shape[1], (shape[0],), generator=gen)

    eps = 1e-7  # Keras' epsilon
    if loss == "mse":
        return dict(input=U(-2, 2), target=U(-2, 2)), lambda a: F.mse_loss(a["input"], a["target"]), "F.mse_loss"
    if loss == "l1":
        return dict(input=U(-2, 2), target=U(-2, 2)), lambda a: F.l1_loss(a["input"], a["target"]), "F.l1_loss"
    if loss == "huber":
        return dict(input=U(-2, 2), target=U(-2, 2)), lambda a: F.huber_loss(a["input"], a["target"]), "F.huber_loss"
    if loss == "smooth_l1":
        return (
            dict(input=U(-2, 2), target=U(-2, 2)),
            lambda a: F.smooth_l1_loss(a["input"], a["target"]),
            "F.smooth_l1_loss",
        )
    if loss == "log_cosh":
        ln2 = math.log(2.0)

        def f(a):
            d = a["y_pred"] - a["y_true"]
            return (d + F.softplus(-2.0 * d) - ln2).mean()

        return dict(y_true=U(-2, 2), y_pred=U(-2, 2)), f, "expr: d+softplus(-2d)-ln2, mean"
    if loss == "mean_absolute_percentage_error":

        def f(a):
            yt, yp = a["y_true"], a["y_pred"]
            return (100.0 * (yt - yp).abs() / yt.abs().clamp_min(eps)).mean()

        return dict(y_true=U(0.5, 2), y_pred=U(0.5, 2)), f, "expr: 100|t-p|/max(|t|,eps), mean"
    if loss == "mean_squared_logarithmic_error":

        def f(a):
            return (torch.log1p(a["y_pred"].clamp_min(eps)) - torch.log1p(a["y_true"].clamp_min(eps))).square().mean()

        return dict(y_true=U(0, 2), y_pred=U(0, 2)), f, "expr: (log1p p - log1p t)^2, mean"
    if loss == "poisson":
        yt = torch.floor(torch.rand(shape, dtype=dtype, generator=gen) * 5)
        return (
            dict(y_true=yt, y_pred=U(0.1, 3)),
            lambda a: F.poisson_nll_loss(a["y_pred"], a["y_true"], log_input=False),
            "F.poisson_nll_loss(log_input=False)",
        )
    if loss == "kl_divergence":
        return (
            dict(y_true=U(1e-3, 1), y_pred=U(1e-3, 1)),
            lambda a: F.kl_div(a["y_pred"].log(), a["y_true"], reduction="batchmean"),
            "F.kl_div(log(y_pred), batchmean)",
        )
    if loss == "log_softmax":
        return dict(input=U(-4, 4)), lambda a: F.log_softmax(a["input"], dim=1), "F.log_softmax(dim=1)"
    if loss == "cross_entropy" and variant == "label_smoothing":
        return (
            dict(input=U(-4, 4), target=classes()),
            lambda a: F.cross_entropy(a["input"], a["target"], label_smoothing=0.1),
            "F.cross_entropy(label_smoothing=0.1)",
        )
    if loss == "cross_entropy" and variant == "probabilities":
        p = torch.rand(shape, dtype=dtype, generator=gen)
        return (
            dict(input=U(-4, 4), target=p / p.sum(dim=1, keepdim=True)),
            lambda a: F.cross_entropy(a["input"], a["target"]),
            "F.cross_entropy(probability targets)",
        )
    if variant:
        return None
    if loss == "cross_entropy":
        return (
            dict(input=U(-4, 4), target=classes()),
            lambda a: F.cross_entropy(a["input"], a["target"]),
            "F.cross_entropy",
        )
    if loss == "nll":
        return dict(input=U(-10, 0), target=classes()), lambda a: F.nll_loss(a["input"], a["target"]), "F.nll_loss"
    if loss == "binary_cross_entropy":
        return (
            dict(input=U(0.01, 0.99), target=bits()),
            lambda a: F.binary_cross_entropy(a["input"], a["target"]),
            "F.binary_cross_entropy",
        )
    if loss == "binary_cross_entropy_with_logits":
        return (
            dict(input=U(-4, 4), target=bits()),
            lambda a: F.binary_cross_entropy_with_logits(a["input"], a["target"]),
            "F.binary_cross_entropy_with_logits",
        )
    if loss == "categorical_crossentropy":
        yt = F.one_hot(classes(), shape[1]).to(dtype)
        return (
            dict(y_true=yt, y_pred=U(-4, 4)),
            lambda a: F.cross_entropy(a["y_pred"], a["y_true"]),
            "F.cross_entropy(probability targets)",
        )
    if loss == "sparse_categorical_crossentropy":
        return (
            dict(y_true=classes(), y_pred=U(-4, 4)),
            lambda a: F.cross_entropy(a["y_pred"], a["y_true"]),
            "F.cross_entropy",
        )
    if loss == "binary_crossentropy":
        return (
            dict(y_true=bits(), y_pred=U(-4, 4)),
            lambda a: F.binary_cross_entropy_with_logits(a["y_pred"], a["y_true"]),
            "F.binary_cross_entropy_with_logits",
        )
    if loss == "squared_hinge":
        return (
            dict(y_true=bits() * 2 - 1, y_pred=U(-2, 2)),
            lambda a: (1 - a["y_true"] * a["y_pred"]).clamp_min(0).square().mean(),
            "expr: max(1-t*p,0)^2, mean",
        )
    if loss == "multiclass_hinge":

        def f(a):
            s, idx = a["scores"], a["labels"][:, None]
            true = s.gather(1, idx)
            return (s + 1).scatter(1, idx, true).amax(1) - true[:, 0]

        return dict(scores=U(-4, 4), labels=classes()), f, "expr: max(s+1-onehot)-s[y]"
    if loss == "margin_ranking":
        return (
            dict(input1=U(-2, 2), input2=U(-2, 2), target=bits() * 2 - 1),
            lambda a: F.margin_ranking_loss(a["input1"], a["input2"], a["target"]),
            "F.margin_ranking_loss",
        )
    if loss == "cosine_similarity":
        return (
            dict(y_true=U(-2, 2), y_pred=U(-2, 2)),
            lambda a: -F.cosine_similarity(a["y_true"], a["y_pred"], dim=-1).mean(),
            "expr: -F.cosine_similarity(dim=-1).mean()",
        )
    if loss == "triplet_margin":
        return (
            dict(anchor=U(-2, 2), positive=U(-2, 2), negative=U(-2, 2)),
            lambda a: F.triplet_margin_loss(a["anchor"], a["positive"], a["negative"]),
            "F.triplet_margin_loss",
        )
    return None


def worker(cases_path, out_path, alloc, target_s, min_reps):
    import torch

    recs = json.loads(Path(cases_path).read_text())
    lk = [r for r in recs if r.get("peer") == "losskit" and r["mode"] in ("fwd", "fwd_bwd")]
    groups = {}
    for r in lk:
        groups.setdefault((r["loss"], r.get("variant", ""), tuple(r["shape"]), r["dtype"]), []).append(r)
    out = []
    gen = torch.Generator().manual_seed(1055)
    for (loss, variant, shape, dt), rs in groups.items():
        dtype = torch.float32 if dt == "f32" else torch.float64
        want = EXPECTED_OPTIONS.get(f"{loss}@{variant}" if variant else loss, "")
        if rs[0].get("options", "") != want:
            print(f"warning: {loss}: losskit ran with options '{rs[0].get('options')}', torch assumes '{want}'",
                  file=sys.stderr)
        built = torch_case(loss, list(shape), dtype, gen, variant)
        if built is None:
            print(f"{loss}: no torch counterpart", file=sys.stderr)
            continue
        base, fn, what = built
        for r in sorted(rs, key=lambda r: (r["threads"], r["mode"])):
            torch.set_num_threads(r["threads"])
            if r["mode"] == "fwd":
                args = base

                def call(args=args):
                    return fn(args)

                grads = []
            else:
                grads = [n for n in r.get("grads", []) if n in base and base[n].is_floating_point()]
                args = {k: (v.detach().clone().requires_grad_(True) if k in grads else v) for k, v in base.items()}

                def call(args=args, grads=grads):
                    loss_t = fn(args)
                    if loss_t.dim() > 0:
                        loss_t = loss_t.sum()
                    return torch.autograd.grad(loss_t, [args[g] for g in grads])

            try:
                call()
                med, p10, p90, reps = measure(call, target_s, min_reps)
            except Exception as e:  # report and go on
                print(f"{r['case']} {dt} {r['mode']}: torch failed: {e}", file=sys.stderr)
                continue
            print(f"torch ({alloc}) {r['case']:44} {dt} {r['threads']} {r['mode']:8} {med * 1e3:10.3f} ms",
                  file=sys.stderr, flush=True)
            out.append({
                "peer": "torch", "alloc": alloc, "case": r["case"], "loss": loss, "shape": list(shape),
                "elements": r["elements"], "threads": r["threads"], "mode": r["mode"],
                "median_s": med, "p10_s": p10, "p90_s": p90, "reps": reps, "dtype": dt,
                "grads": grads, "counterpart": what, "torch": torch.__version__,
            })
    Path(out_path).write_text(json.dumps(out))


# --------------------------------------------------------------------------------------------
# the parent: run everything, print one table


def env_for(alloc):
    env = dict(os.environ)
    env.pop("GLIBC_TUNABLES", None)
    if alloc == "warm":
        env["GLIBC_TUNABLES"] = WARM_TUNABLES
    return env


def fmt_t(s):
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f}us"
    if s < 1:
        return f"{s * 1e3:.2f}ms"
    return f"{s:.2f}s"


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


def worker_loop(alloc, target_s, min_reps):
    """A persistent torch worker: one `CASES OUT` pair per line of stdin, each answered by a
    line `done` on stdout once OUT is written (torch is imported once, not once per loss)."""
    for line in sys.stdin:
        cases, out = line.split()
        worker(cases, out, alloc, target_s, min_reps)
        print("done", flush=True)


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: small sizes, few repetitions")
    p.add_argument("--ids", default="", help="comma-separated loss ids (default: every implemented loss)")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--dtypes", default="f32")
    p.add_argument("--sizes", default="", help="as losskit bench --sizes (default: its defaults)")
    p.add_argument("--time", type=float, default=None, help="seconds of repetitions per case")
    p.add_argument("--min-reps", type=int, default=None)
    p.add_argument("--rounds", type=int, default=1,
                   help="times every loss is measured on both sides (each round alternates which side "
                        "goes first); the table gives each side's median over the rounds and the median "
                        "of the rounds' ratios")
    p.add_argument("--losskit", default=str(ROOT / "target" / "release" / "losskit"))
    p.add_argument("--json", default=None, help="write every record (losskit, torch, stream) here")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--worker-loop", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--alloc", default="default", help=argparse.SUPPRESS)
    a = p.parse_args()

    target_s = a.time if a.time is not None else (0.01 if a.quick else 0.3)
    min_reps = a.min_reps if a.min_reps is not None else (3 if a.quick else 5)
    if a.worker_loop:
        worker_loop(a.alloc, target_s, min_reps)
        return
    if a.rounds < 1:
        sys.exit("error: --rounds must be at least 1")

    lk = Path(a.losskit)
    if not lk.exists():
        sys.exit(f"error: {lk} not found (run `cargo build --release` first, or pass --losskit)")
    ids = [i for i in a.ids.split(",") if i]
    if not ids:
        listed = json.loads(subprocess.run([str(lk), "list", "--json"], check=True, capture_output=True).stdout)
        ids = [x["id"] for x in listed]
    common = ["bench", "--dtypes", a.dtypes]
    if a.sizes:
        common += ["--sizes", a.sizes]
    if a.quick:
        common.append("--quick")
    common += ["--time", str(target_s), "--min-reps", str(min_reps)]
    threads = a.threads.split(",")

    # (peer, alloc) -> key -> one record per round
    runs = {("losskit", "default"): {}, ("losskit", "warm"): {}, ("torch", "default"): {}, ("torch", "warm"): {}}
    key = lambda r: (r["case"], r["dtype"], r["mode"], r["threads"])  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="losskit-vs-torch-") as tmp:
        tmp = Path(tmp)
        t_start = time.time()

        def losskit(args, alloc, out):
            # progress to stderr, so that stdout holds only the table
            subprocess.run([str(lk), *args, "--json", str(out)], check=True, env=env_for(alloc), stdout=sys.stderr)
            return json.loads(out.read_text())

        # the bandwidth probe, once per thread count
        stream, stream_recs = {}, []
        for t in threads:
            print(f"== stream ({t} thread(s))", file=sys.stderr, flush=True)
            for r in losskit(["bench", "--stream", "--threads", t], "default", tmp / "stream.json"):
                if r.get("peer") == "stream":
                    stream_recs.append(r)
                    if r["kernel"] == "read":
                        stream[r["threads"]] = r
        # one persistent torch worker per allocator regime (the tunables act at process start)
        me = [sys.executable, str(Path(__file__).resolve()), "--time", str(target_s), "--min-reps", str(min_reps)]
        workers = {
            alloc: subprocess.Popen([*me, "--worker-loop", "--alloc", alloc], env=env_for(alloc),
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for alloc in ("default", "warm")
        }

        def torch(alloc, cases, out):
            w = workers[alloc]
            w.stdin.write(f"{cases} {out}\n")
            w.stdin.flush()
            if w.stdout.readline().strip() != "done":
                sys.exit(f"error: the torch worker ({alloc} allocator) stopped")
            return json.loads(Path(out).read_text())

        def lk_side(loss):
            """Every case of `loss` in losskit, by allocator regime: one process per thread count.
            With a single --threads value the calling thread is one of the pool's threads and
            makes the calls (allocating in the main thread's glibc arena, as a program calling the
            library, and as torch, does); a pool worker's arena maps every allocation over 64 MiB
            afresh, whatever the tunables."""
            recs = {}
            for regime, extra in (("default", []), ("warm", ["--modes", "fwd,fwd_bwd"])):
                recs[regime] = []
                for t in threads:
                    out = tmp / f"lk_{regime}_{t}.json"
                    recs[regime] += losskit([*common, "--ids", loss, "--threads", t, *extra], regime, out)
            return recs

        def torch_side(cases):
            """The torch counterparts of losskit's records `cases`, by allocator regime."""
            (tmp / "cases.json").write_text(json.dumps(cases))
            return {alloc: torch(alloc, tmp / "cases.json", tmp / f"torch_{alloc}.json")
                    for alloc in ("default", "warm")}

        cases_of = {}
        try:
            # Each loss is measured on both sides one right after the other (seconds apart, not the
            # minutes of a whole run): the vCPUs' speed drifts, and a ratio of two times taken far
            # apart measures the drift as much as the code. Rounds alternate which side goes first.
            for rnd in range(a.rounds):
                for loss in ids:
                    print(f"== round {rnd + 1}/{a.rounds}: {loss}", file=sys.stderr, flush=True)
                    if rnd % 2 == 0:
                        lk_recs = lk_side(loss)
                        torch_recs = torch_side(lk_recs["default"])
                    else:
                        # torch first, on the cases of the round before
                        torch_recs = torch_side(cases_of[loss])
                        lk_recs = lk_side(loss)
                    cases_of[loss] = lk_recs["default"]
                    for alloc in ("default", "warm"):
                        for r in lk_recs[alloc]:
                            if r.get("peer") == "losskit":
                                r["alloc"], r["round"] = alloc, rnd + 1
                                runs[("losskit", alloc)].setdefault(key(r), []).append(r)
                        for r in torch_recs[alloc]:
                            r["round"] = rnd + 1
                            runs[("torch", alloc)].setdefault(key(r), []).append(r)
        finally:
            for w in workers.values():
                w.stdin.close()
                w.wait()
        elapsed = time.time() - t_start

    def med(peer, alloc, k):
        recs = runs[(peer, alloc)].get(k)
        return median([r["median_s"] for r in recs]) if recs else None

    def paired(alloc, k):
        """The median over rounds of torch / losskit, each round's two times taken together."""
        lk_by = {r["round"]: r["median_s"] for r in runs[("losskit", alloc)].get(k, [])}
        t_by = {r["round"]: r["median_s"] for r in runs[("torch", alloc)].get(k, [])}
        rs = [t_by[n] / lk_by[n] for n in lk_by if n in t_by]
        return f"{median(rs):.2f}x" if rs else "-"

    head = ["case", "dtype", "mode", "thr", "torch counterpart", "losskit", "torch", "torch/lk",
            "losskit warm", "torch warm", "torch/lk warm", "%bw"]
    rows = []
    torch_all = [r for alloc in ("default", "warm") for recs in runs[("torch", alloc)].values() for r in recs]
    for k, recs in runs[("losskit", "default")].items():
        r = recs[0]
        # the counterpart's name, from any torch record of this loss
        same = lambda x: x["case"].split("/")[0] == r["case"].split("/")[0]  # noqa: E731
        cp = next((x["counterpart"] for x in torch_all if same(x)), "-")
        bw = stream.get(r["threads"])
        lkm = med("losskit", "default", k)
        frac = f"{100 * r['min_bytes'] / lkm / 1e9 / bw['gbps']:.0f}%" if bw else "-"
        rows.append([
            r["case"], r["dtype"], r["mode"], str(r["threads"]), cp if r["mode"] != "fwd_bwd_into" else "",
            fmt_t(lkm), fmt_t(med("torch", "default", k)), paired("default", k),
            fmt_t(med("losskit", "warm", k)), fmt_t(med("torch", "warm", k)), paired("warm", k),
            frac,
        ])

    if a.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" if i < 5 else "--:" for i in range(len(head))) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        w = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
        print("  ".join(h.ljust(w[i]) if i < 5 else h.rjust(w[i]) for i, h in enumerate(head)))
        for row in rows:
            print("  ".join(c.ljust(w[i]) if i < 5 else c.rjust(w[i]) for i, c in enumerate(row)))
    bws = ", ".join(f"{t} thread(s) {r['gbps']:.1f} GB/s" for t, r in sorted(stream.items()))
    import_torch_version = next((x["torch"] for x in torch_all), "?")
    rounds = (f"{a.rounds} rounds, each loss timed on both sides one right after the other; times are "
              f"medians over the rounds, ratios the median of the rounds' ratios" if a.rounds > 1 else
              "each loss timed on both sides one right after the other")
    print(f"\ntorch {import_torch_version}; stream read bandwidth: {bws}; {rounds}; "
          f"ratios are torch median / losskit median (> 1: losskit faster); "
          f"%bw = losskit min_bytes/median over the read bandwidth; "
          f"warm = GLIBC_TUNABLES={WARM_TUNABLES}; {elapsed:.0f} s in all")
    if a.json:
        allrecs = stream_recs + [r for recs in runs.values() for rs in recs.values() for r in rs]
        Path(a.json).write_text("[\n" + ",\n".join(json.dumps(r) for r in allrecs) + "\n]\n")
        print(f"wrote {len(allrecs)} records to {a.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
