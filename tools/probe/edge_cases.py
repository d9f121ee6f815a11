"""Adversarial edge-case probe of `losskit eval` against the reference libraries.

Run from the repository root (after `cargo build --release`):

    KERAS_BACKEND=jax ~/.cache/losskit-refenv/bin/python tools/probe/edge_cases.py [--ids a,b] [-v]

For every implemented id it builds edge cases (numerical extremes, odd shapes, empty batches,
option extremes) and error cases (bad shapes, out-of-range indices, bad options, corrupt .npy
files, mixed dtypes, integer arrays for floats, unknown/missing arguments and options), and
checks the binary against the reference (the conformance tool's reference functions, value and
gradient of sum(loss) in float64; float32 = float64 reference on float32-rounded inputs, rounded
to float32) and against the error contract of CLI.md (exit 2, one `error: ` line on stderr that
names the argument/option, nothing on stdout, no file in --out). A panic (exit 101) is always a
failure.

Expectations per case:
  ref    - an error exactly when the reference raises, otherwise the reference's numbers
  error  - the contract says it is an error (index out of range, corrupt file, ...)
  either - no panic and a well-formed answer; if both succeed the numbers must agree
"""
import argparse
import concurrent.futures as cf
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, "/work/shared/tools")
from conformance_py import catalog, compare, core, env, generators  # noqa: E402,F401

BIN = os.path.abspath("target/release/losskit")
CAT = catalog.load()
I64MIN, I64MAX = np.iinfo(np.int64).min, np.iinfo(np.int64).max
RNG = np.random.default_rng(12345)


def rn(*shape, s=1.0):
    return RNG.standard_normal(shape) * s


def ru(lo, hi, *shape):
    return RNG.uniform(lo, hi, shape)


def ri(lo, hi, *shape):
    return RNG.integers(lo, hi, shape).astype(np.int64)


def probs(*shape, axis=-1):
    z = rn(*shape)
    e = np.exp(z - z.max(axis=axis, keepdims=True)) if z.size else z
    return e / e.sum(axis=axis, keepdims=True) if z.size else z


def onehot(lab, C):
    return np.eye(C)[lab] if lab.size else np.zeros(lab.shape + (C,))


class Case:
    def __init__(self, id, label, args, opts=None, expect="ref", dtypes=("float32", "float64"), grad=True,
                 names=(), raw=None, cli=None, scale=None, keras_native=False):
        self.id, self.label, self.args, self.opts = id, label, args, dict(opts or {})
        self.expect, self.dtypes, self.grad, self.names = expect, dtypes, grad, tuple(names)
        self.raw = raw  # name -> bytes: files written verbatim (no reference)
        self.cli = cli  # full override of the argument list after `eval` (paths substituted)
        self.scale = scale
        self.keras_native = keras_native


CASES = []


def add(*a, **k):
    CASES.append(Case(*a, **k))


# ------------------------------------------------------------------------------------------
# per-id edge cases

TORCH_RED = ["none", "mean", "sum"]


def keras_reds(id):
    return CAT[id].enum_values("reduction")


def torch_pointwise(id):
    shapes = [(), (1,), (0,), (2, 0, 3), (1, 1, 1), (3, 4)]
    for s in shapes:
        for r in TORCH_RED:
            add(id, f"shape {s} {r}", {"input": rn(*s), "target": rn(*s)}, {"reduction": r})
            if id != "smooth_l1":
                # a one-element weighted mean has a weight gradient that is 0 only by cancellation
                add(id, f"weighted shape {s} {r}", {"input": rn(*s), "target": rn(*s), "weight": ru(0.1, 2, *s)},
                    {"reduction": r}, scale=10.0 if int(np.prod(s)) == 1 else None)
    ext = np.array([1e4, -1e4, 0.0, 1e-300, -3e38, 3e38, 1e200, 2.5, -2.5])
    for r in TORCH_RED:
        add(id, f"extremes {r}", {"input": ext, "target": np.zeros_like(ext)}, {"reduction": r})
        add(id, f"zero error {r}", {"input": ext[:5], "target": ext[:5].copy()}, {"reduction": r})
        if id != "smooth_l1":
            add(id, f"zero weights {r}", {"input": rn(4), "target": rn(4), "weight": np.zeros(4)}, {"reduction": r})
            add(id, f"negative weights {r}", {"input": rn(4), "target": rn(4), "weight": -ru(0.1, 2, 4)},
                {"reduction": r})
    # shape errors
    add(id, "shape mismatch", {"input": rn(3), "target": rn(4)}, expect="error", names=("target", "input"))
    add(id, "broadcast (3,1)/(3,4)", {"input": rn(3, 1), "target": rn(3, 4)}, expect="error",
        names=("target", "input"))
    add(id, "0-d target vs (3,)", {"input": rn(3), "target": rn()}, expect="error", names=("target", "input"))
    if id != "smooth_l1":
        add(id, "weight wrong shape", {"input": rn(3, 4), "target": rn(3, 4), "weight": ru(0.1, 1, 4)},
            expect="error", names=("weight",))
    opt = {"huber": "delta", "smooth_l1": "beta"}.get(id)
    if opt:
        x, y = rn(6, s=3), rn(6)
        for v in [1e-300, 1e-3, 0.5, 1e300, math.inf] + ([0.0] if id == "smooth_l1" else []):
            for r in TORCH_RED:
                add(id, f"{opt}={v} {r}", {"input": x, "target": y}, {opt: v, "reduction": r})
        # the kink |e| == delta exactly (value and gradient continuous)
        add(id, f"|e| == {opt}", {"input": np.array([1.5, -1.5, 0.0]), "target": np.zeros(3)}, {opt: 1.5})
        bad = [-1.0, -math.inf] + ([0.0] if id == "huber" else [])
        for v in bad:
            add(id, f"{opt}={v}", {"input": x, "target": y}, {opt: v}, expect="error", names=(opt,))
        add(id, f"{opt}=nan", {"input": x, "target": y}, {opt: math.nan}, expect="either", names=(opt,))


def keras_pair(id):
    reds = keras_reds(id)
    gen = {
        "log_cosh": lambda *s: (rn(*s), rn(*s, s=3)),
        "mean_absolute_percentage_error": lambda *s: (rn(*s), rn(*s)),
        "mean_squared_logarithmic_error": lambda *s: (ru(-0.5, 3, *s), ru(-0.5, 3, *s)),
        "poisson": lambda *s: (ru(0, 4, *s), ru(0.1, 3, *s)),
        "kl_divergence": lambda *s: (ru(0, 1, *s), ru(0.01, 1, *s)),
    }[id]
    shapes = [(1,), (1, 1), (5, 1), (3,), (0, 4), (4, 0), (2, 3, 4), (), (1, 30000)]
    for s in shapes:
        yt, yp = gen(*s)
        for r in reds:
            add(id, f"shape {s} {r}", {"y_true": yt, "y_pred": yp}, {"reduction": r})
    # sample weights
    yt, yp = gen(4, 3)
    for r in reds:
        add(id, f"sw (4,) {r}", {"y_true": yt, "y_pred": yp, "sample_weight": ru(0.1, 2, 4)}, {"reduction": r})
        add(id, f"sw (4,1) {r}", {"y_true": yt, "y_pred": yp, "sample_weight": ru(0.1, 2, 4, 1)}, {"reduction": r})
        add(id, f"sw 0-d {r}", {"y_true": yt, "y_pred": yp, "sample_weight": np.array(0.7)}, {"reduction": r})
        add(id, f"sw zeros {r}", {"y_true": yt, "y_pred": yp, "sample_weight": np.zeros(4)}, {"reduction": r})
        add(id, f"sw negative {r}", {"y_true": yt, "y_pred": yp, "sample_weight": -ru(0.1, 2, 4)},
            {"reduction": r})
    yt3, yp3 = gen(2, 3, 4)
    for r in reds:
        add(id, f"rank3 sw (2,3) {r}", {"y_true": yt3, "y_pred": yp3, "sample_weight": ru(0.1, 2, 2, 3)},
            {"reduction": r})
        add(id, f"rank3 sw (2,1) {r}", {"y_true": yt3, "y_pred": yp3, "sample_weight": ru(0.1, 2, 2, 1)},
            {"reduction": r})
        add(id, f"rank3 sw (2,) {r}", {"y_true": yt3, "y_pred": yp3, "sample_weight": ru(0.1, 2, 2)},
            {"reduction": r})
    add(id, "empty batch with sw", {"y_true": gen(0, 4)[0], "y_pred": gen(0, 4)[1], "sample_weight": np.zeros(0)},
        {"reduction": "mean_with_sample_weight"})
    # rank difference of one (squeeze_or_expand)
    yt, yp = gen(4, 1)
    add(id, "y_true (4,) y_pred (4,1)", {"y_true": yt[:, 0], "y_pred": yp}, {"reduction": "none"})
    add(id, "y_true (4,1) y_pred (4,)", {"y_true": yt, "y_pred": yp[:, 0]}, {"reduction": "none"})
    add(id, "y_true (4,1) y_pred (4,) sum", {"y_true": yt, "y_pred": yp[:, 0]}, {"reduction": "sum"})
    yt, yp = gen(4, 3)
    add(id, "y_true (4,) y_pred (4,3)", {"y_true": yt[:, 0], "y_pred": yp})
    add(id, "shape mismatch (3,4)/(3,5)", {"y_true": rn(3, 4), "y_pred": rn(3, 5)}, names=("y_true", "y_pred"))
    # Keras broadcasts y_true silently; the catalogue says "same shape" (an error is fine)
    add(id, "broadcast (1,4)/(3,4)", {"y_true": gen(1, 4)[0], "y_pred": gen(3, 4)[1]}, expect="either")
    add(id, "sw wrong shape (5,)", {"y_true": yt, "y_pred": yp, "sample_weight": ru(0.1, 1, 5)},
        names=("sample_weight",))
    add(id, "sw too big (4,3,2)", {"y_true": yt, "y_pred": yp, "sample_weight": ru(0.1, 1, 4, 3, 2)},
        names=("sample_weight",))
    # numerical extremes
    ext = {
        "log_cosh": (np.zeros(8), np.array([1e4, -1e4, 1000.0, -800.0, 1e-8, 0.0, 88.0, 1e300])),
        "mean_absolute_percentage_error": (np.array([0.0, 0.0, -0.0, 1e-8, -1e-300, 1e4, 3e38, -2.0]),
                                           np.array([1.0, 0.0, -3.0, 1e-8, 2.0, -1e4, 1.0, -2.0])),
        "mean_squared_logarithmic_error": (np.array([0.0, -1.0, 1e-7, 1e4, 3e38, 1e300, -1e300, 5.0]),
                                           np.array([0.0, 1e-7, -1.0, 1e-8, 0.0, 1.0, 1e300, 1e-7])),
        "poisson": (np.array([0.0, 0.0, 3.0, 1e4, 1.0, 0.0, 2.0, 1.0]),
                    np.array([0.0, 1e-300, 0.0, 1e4, 1e30, -1e-8, -1.0, 1e-7])),
        "kl_divergence": (np.array([0.0, 1.0, 1.0, 0.0, 2.0, -1.0, 0.5, 1e-300]),
                          np.array([0.0, 1.0, 0.0, 1.0, 0.5, 0.5, 2.0, 1e-300])),
    }[id]
    yt, yp = ext
    for r in ("none", "sum"):
        add(id, f"extremes {r}", {"y_true": yt.reshape(2, 4), "y_pred": yp.reshape(2, 4)}, {"reduction": r},
            keras_native=True)
        add(id, f"extremes 1-d {r}", {"y_true": yt, "y_pred": yp}, {"reduction": r}, keras_native=True)


def log_softmax():
    id = "log_softmax"
    for s, dims in [((), [0, -1]), ((1,), [0, -1]), ((0,), [0]), ((3, 0), [0, 1]), ((0, 3), [1, 0]),
                    ((1, 1), [0, 1]), ((2, 30000), [1]), ((2, 3, 4), [-3, -2, -1, 0, 1, 2])]:
        for d in dims:
            add(id, f"shape {s} dim {d}", {"input": rn(*s, s=3)}, {"dim": d})
    x = np.array([[1e4, 0.0, -1e4], [-1e4, -1e4, -1e4], [1000.0, -np.inf, 0.0], [3e38, 3e38, -3e38],
                  [-np.inf, -np.inf, -np.inf], [1e300, 1e300, 0.0]])
    for d in [0, 1, -1]:
        add(id, f"extremes dim {d}", {"input": x}, {"dim": d})
    add(id, "dim out of range 2", {"input": rn(3, 4)}, {"dim": 2}, names=("dim",))
    add(id, "dim out of range -3", {"input": rn(3, 4)}, {"dim": -3}, names=("dim",))
    add(id, "dim i64 max", {"input": rn(3, 4)}, {"dim": int(I64MAX)}, expect="error", names=("dim",))
    add(id, "dim i64 min", {"input": rn(3, 4)}, {"dim": int(I64MIN)}, expect="error", names=("dim",))
    add(id, "dim missing", {"input": rn(3, 4)}, {}, expect="error", names=("dim",))
    add(id, "dim=None", {"input": rn(3, 4)}, {"dim": "None"}, expect="error", names=("dim",))
    add(id, "0-d dim 1", {"input": rn()}, {"dim": 1}, names=("dim",))


def ce_like(id):
    prob = id == "cross_entropy"
    reds = TORCH_RED
    ign_name = "ignore_index"
    for r in reds:
        add(id, f"C=1 {r}", {"input": rn(4, 1), "target": np.zeros(4, np.int64)}, {"reduction": r})
        add(id, f"one elt (1,1) {r}", {"input": rn(1, 1), "target": np.zeros(1, np.int64)}, {"reduction": r})
        add(id, f"unbatched (5,) {r}", {"input": rn(5), "target": np.array(3)}, {"reduction": r})
        add(id, f"unbatched C=1 {r}", {"input": rn(1), "target": np.array(0)}, {"reduction": r})
        add(id, f"empty batch (0,3) {r}", {"input": rn(0, 3), "target": np.zeros(0, np.int64)}, {"reduction": r})
        add(id, f"empty spatial (2,3,0) {r}", {"input": rn(2, 3, 0), "target": np.zeros((2, 0), np.int64)},
            {"reduction": r})
        add(id, f"30000 classes {r}", {"input": rn(3, 30000, s=3), "target": ri(0, 30000, 3),
                                       "weight": ru(0.1, 2, 30000)}, {"reduction": r})
        add(id, f"K-dim {r}", {"input": rn(2, 4, 3, 2), "target": ri(0, 4, 2, 3, 2), "weight": ru(0.1, 2, 4)},
            {"reduction": r})
        x = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [0.0, 0.0, 0.0], [3e38, -3e38, 0.0]])
        if id == "nll":
            x = np.array([[1e4, -1e4, 0.0], [-np.inf, 0.0, 0.0], [0.0, 0.0, 0.0], [3e38, -3e38, 0.0]])
        add(id, f"extreme logits {r}", {"input": x, "target": np.array([1, 0, 2, 1])}, {"reduction": r})
        add(id, f"all ignored {r}", {"input": rn(3, 4), "target": np.full(3, -100, np.int64)}, {"reduction": r})
        add(id, f"all ignored weighted {r}", {"input": rn(3, 4), "target": np.full(3, -100, np.int64),
                                              "weight": ru(0.1, 1, 4)}, {"reduction": r})
        add(id, f"ignore_index=2 {r}", {"input": rn(4, 3), "target": np.array([2, 0, 2, 1])},
            {"reduction": r, ign_name: 2})
        add(id, f"ignore_index big {r}", {"input": rn(4, 3), "target": np.array([7, 0, 7, 1])},
            {"reduction": r, ign_name: 7})
        add(id, f"ignore_index i64max {r}", {"input": rn(2, 3), "target": np.array([0, 1])},
            {"reduction": r, ign_name: int(I64MAX)})
        add(id, f"zero weights {r}", {"input": rn(3, 4), "target": np.array([0, 1, 2]), "weight": np.zeros(4)},
            {"reduction": r})
        add(id, f"uint8 target {r}", {"input": rn(3, 4), "target": np.array([0, 3, 1], np.uint8)},
            {"reduction": r})
        add(id, f"bool target {r}", {"input": rn(3, 4), "target": np.array([True, False, True])},
            {"reduction": r}, expect="either")
        add(id, f"int32 target {r}", {"input": rn(3, 4), "target": np.array([0, 3, 1], np.int32)},
            {"reduction": r}, expect="either")
        if prob:
            for ls in [0.0, 1.0, 0.3]:
                add(id, f"ls={ls} {r}", {"input": rn(4, 5), "target": ri(0, 5, 4), "weight": ru(0.1, 2, 5)},
                    {"reduction": r, "label_smoothing": ls})
                add(id, f"prob ls={ls} {r}", {"input": rn(4, 5), "target": probs(4, 5, axis=1)},
                    {"reduction": r, "label_smoothing": ls})
            add(id, f"prob zero targets -inf logit {r}", {"input": np.array([[0.0, -np.inf, 1.0]]),
                                                         "target": np.array([[0.5, 0.0, 0.5]])}, {"reduction": r})
            add(id, f"prob extreme {r}", {"input": x, "target": np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1.0],
                                                                          [0.5, 0.5, 0]])}, {"reduction": r})
            add(id, f"prob 0-d? (C,) {r}", {"input": rn(5), "target": probs(5)}, {"reduction": r})
            add(id, f"prob empty (0,3) {r}", {"input": rn(0, 3), "target": np.zeros((0, 3))}, {"reduction": r})
            add(id, f"prob C=1 {r}", {"input": rn(4, 1), "target": np.ones((4, 1))}, {"reduction": r})
            add(id, f"prob weighted K-dim {r}", {"input": rn(2, 3, 4), "target": probs(2, 3, 4, axis=1),
                                                 "weight": ru(0.1, 2, 3)}, {"reduction": r, "label_smoothing": 0.2})
            add(id, f"ls with ignored {r}", {"input": rn(4, 3), "target": np.array([2, -100, 1, 0]),
                                             "weight": ru(0.1, 2, 3)}, {"reduction": r, "label_smoothing": 0.4})
    # errors
    add(id, "target out of range C", {"input": rn(3, 4), "target": np.array([0, 4, 1])}, expect="error",
        names=("target",))
    add(id, "target -1", {"input": rn(3, 4), "target": np.array([0, -1, 1])}, expect="error", names=("target",))
    add(id, "target i64 min", {"input": rn(3, 4), "target": np.array([0, I64MIN, 1])}, expect="error",
        names=("target",))
    add(id, "target i64 max", {"input": rn(3, 4), "target": np.array([0, I64MAX, 1])}, expect="error",
        names=("target",))
    add(id, "target uint64 huge", {"input": rn(3, 4), "target": np.array([0, 2**64 - 1, 1], np.uint64)},
        expect="error", names=("target",))
    add(id, "unbatched target out of range", {"input": rn(5), "target": np.array(5)}, expect="error",
        names=("target",))
    add(id, "target wrong batch", {"input": rn(3, 4), "target": np.array([0, 1])}, names=("target", "input"))
    add(id, "target wrong spatial", {"input": rn(2, 4, 3), "target": ri(0, 4, 2, 4)}, names=("target", "input"))
    add(id, "target (N,1)", {"input": rn(3, 4), "target": ri(0, 4, 3, 1)}, names=("target", "input"))
    add(id, "weight wrong size", {"input": rn(3, 4), "target": ri(0, 4, 3), "weight": ru(0.1, 1, 3)},
        names=("weight",))
    add(id, "weight 2-d", {"input": rn(3, 4), "target": ri(0, 4, 3), "weight": ru(0.1, 1, 1, 4)},
        names=("weight",))
    add(id, "0-d input", {"input": rn(), "target": np.array(0)}, names=("input",))
    add(id, "float target index-shaped", {"input": rn(3, 4), "target": np.array([0.0, 1.0, 2.0])},
        expect="error" if id == "nll" else "ref", names=("target",))
    if prob:
        add(id, "prob mode ignore_index>=0", {"input": rn(3, 4), "target": probs(3, 4)}, {"ignore_index": 1},
            names=("ignore_index",))
        add(id, "label_smoothing 1.5", {"input": rn(3, 4), "target": ri(0, 4, 3)}, {"label_smoothing": 1.5},
            names=("label_smoothing",))
        add(id, "label_smoothing -0.5", {"input": rn(3, 4), "target": ri(0, 4, 3)}, {"label_smoothing": -0.5},
            expect="either", names=("label_smoothing",))
        add(id, "label_smoothing nan", {"input": rn(3, 4), "target": ri(0, 4, 3)}, {"label_smoothing": math.nan},
            expect="either", names=("label_smoothing",))
        add(id, "label_smoothing inf", {"input": rn(3, 4), "target": ri(0, 4, 3)}, {"label_smoothing": math.inf},
            expect="error", names=("label_smoothing",))
        add(id, "prob target shape differs", {"input": rn(3, 4), "target": probs(3, 5)},
            names=("target", "input"))


def bce():
    id = "binary_cross_entropy"
    for r in TORCH_RED:
        x = np.array([0.0, 1.0, 0.0, 1.0, 0.5, 1e-300, 1 - 1e-16, 1e-45])
        y = np.array([0.0, 1.0, 1.0, 0.0, 0.5, 1.0, 0.0, 1.0])
        add(id, f"exact 0/1 {r}", {"input": x, "target": y}, {"reduction": r})
        add(id, f"exact 0/1 weighted {r}", {"input": x, "target": y, "weight": ru(0.1, 2, 8)}, {"reduction": r})
        for s in [(), (1,), (0,), (2, 0), (3, 4)]:
            add(id, f"shape {s} {r}", {"input": ru(0, 1, *s), "target": ru(0, 1, *s)}, {"reduction": r})
        add(id, f"weight broadcast (4,) {r}", {"input": ru(0, 1, 3, 4), "target": ru(0, 1, 3, 4),
                                               "weight": ru(0.1, 2, 4)}, {"reduction": r})
        add(id, f"weight broadcast (3,1) {r}", {"input": ru(0, 1, 3, 4), "target": ru(0, 1, 3, 4),
                                                "weight": ru(0.1, 2, 3, 1)}, {"reduction": r})
        add(id, f"weight 0-d {r}", {"input": ru(0, 1, 3, 4), "target": ru(0, 1, 3, 4), "weight": np.array(0.5)},
            {"reduction": r})
    add(id, "input > 1", {"input": np.array([0.5, 1.5]), "target": np.array([0.0, 1.0])}, expect="error",
        names=("input",))
    add(id, "input < 0", {"input": np.array([0.5, -1e-30]), "target": np.array([0.0, 1.0])}, expect="error",
        names=("input",))
    add(id, "input nan", {"input": np.array([0.5, np.nan]), "target": np.array([0.0, 1.0])}, expect="error",
        names=("input",))
    add(id, "target > 1", {"input": np.array([0.5, 0.5]), "target": np.array([0.0, 2.0])}, expect="error",
        names=("target",))
    add(id, "target nan", {"input": np.array([0.5, 0.5]), "target": np.array([0.0, np.nan])}, names=("target",))
    add(id, "size mismatch", {"input": ru(0, 1, 3), "target": ru(0, 1, 4)}, names=("target", "input"))
    add(id, "broadcast (3,1)/(3,4)", {"input": ru(0, 1, 3, 1), "target": ru(0, 1, 3, 4)}, expect="error",
        names=("target", "input"))
    add(id, "weight not broadcastable", {"input": ru(0, 1, 3, 4), "target": ru(0, 1, 3, 4),
                                         "weight": ru(0.1, 1, 3)}, names=("weight",))
    add(id, "weight bigger (2,3,4)", {"input": ru(0, 1, 3, 4), "target": ru(0, 1, 3, 4),
                                      "weight": ru(0.1, 1, 2, 3, 4)}, names=("weight",))


def bce_logits():
    id = "binary_cross_entropy_with_logits"
    for r in TORCH_RED:
        x = np.array([1e4, -1e4, 1e4, -1e4, 0.0, 3e38, -3e38, 40.0, -800.0])
        y = np.array([1.0, 0.0, 0.0, 1.0, 0.5, 0.0, 1.0, 0.3, 0.7])
        add(id, f"extreme logits {r}", {"input": x, "target": y}, {"reduction": r})
        add(id, f"extreme logits pos_weight {r}", {"input": x, "target": y, "pos_weight": ru(0.1, 4, 9),
                                                   "weight": ru(0.1, 2, 9)}, {"reduction": r})
        for s in [(), (1,), (0,), (2, 0), (3, 4)]:
            add(id, f"shape {s} {r}", {"input": rn(*s), "target": ru(0, 1, *s)}, {"reduction": r})
        add(id, f"pw (4,) w (3,1) {r}", {"input": rn(3, 4), "target": ru(0, 1, 3, 4), "pos_weight": ru(0.1, 4, 4),
                                         "weight": ru(0.1, 2, 3, 1)}, {"reduction": r})
        add(id, f"pw 0-d {r}", {"input": rn(3, 4), "target": ru(0, 1, 3, 4), "pos_weight": np.array(2.0)},
            {"reduction": r})
        add(id, f"pw (1,) {r}", {"input": rn(3, 4), "target": ru(0, 1, 3, 4), "pos_weight": np.array([2.0])},
            {"reduction": r})
        add(id, f"pw zero/neg {r}", {"input": rn(2, 3), "target": ru(0, 1, 2, 3),
                                     "pos_weight": np.array([0.0, -1.0, 2.0])}, {"reduction": r})
        add(id, f"targets outside [0,1] {r}", {"input": rn(2, 3), "target": np.array([[2.0, -1, 0.5], [0, 1, 3]])},
            {"reduction": r})
        add(id, f"pw full shape (3,4) {r}", {"input": rn(3, 4), "target": ru(0, 1, 3, 4),
                                             "pos_weight": ru(0.1, 3, 3, 4)}, {"reduction": r})
    add(id, "size mismatch", {"input": rn(3), "target": ru(0, 1, 4)}, names=("target", "input"))
    add(id, "broadcast (3,1)/(3,4)", {"input": rn(3, 1), "target": ru(0, 1, 3, 4)}, expect="error",
        names=("target", "input"))
    add(id, "pos_weight (3,) vs (3,4)", {"input": rn(3, 4), "target": ru(0, 1, 3, 4), "pos_weight": ru(0.1, 1, 3)},
        names=("pos_weight",))
    add(id, "pos_weight bigger rank", {"input": rn(4), "target": ru(0, 1, 4), "pos_weight": ru(0.1, 1, 2, 4)},
        names=("pos_weight",))
    add(id, "weight (3,)", {"input": rn(3, 4), "target": ru(0, 1, 3, 4), "weight": ru(0.1, 1, 3)},
        names=("weight",))


def keras_cat(id):
    reds = keras_reds(id)
    for fl in [False, True]:
        for r in reds:
            for s in [(1, 1), (4, 1), (3,), (0, 4), (2, 3, 4), (1, 30000)]:
                yp = rn(*s, s=2) if fl else ru(0.01, 1, *s)
                yt = probs(*s) if s[-1] > 0 and s[0] > 0 else np.zeros(s)
                add(id, f"shape {s} logits={fl} {r}", {"y_true": yt, "y_pred": yp},
                    {"reduction": r, "from_logits": fl}, keras_native=True)
        # extremes
        if fl:
            yp = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [3e38, -3e38, 0.0], [0.0, 0.0, 0.0]])
        else:
            yp = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1e-300, 1.0, 5.0]])
        yt = np.array([[1.0, 0, 0], [1, 0, 0], [0, 0, 1], [0.2, 0.3, 0.5]])
        for r in ("none", "sum"):
            for ls in [0.0, 1.0, 0.3]:
                add(id, f"extremes logits={fl} ls={ls} {r}", {"y_true": yt, "y_pred": yp},
                    {"reduction": r, "from_logits": fl, "label_smoothing": ls}, keras_native=True)
        for ax in [0, 1, -2, -3, 2]:
            add(id, f"axis {ax} logits={fl}", {"y_true": probs(2, 3, 4, axis=ax % 3) if ax in (0, 1, -2, -3, 2)
                                               else None, "y_pred": ru(0.01, 1, 2, 3, 4) if not fl else rn(2, 3, 4)},
                {"axis": ax, "from_logits": fl, "reduction": "none"}, keras_native=True)
    add(id, "axis out of range 3", {"y_true": probs(2, 3), "y_pred": ru(0.1, 1, 2, 3)}, {"axis": 3},
        expect="error", names=("axis",))
    add(id, "axis i64 min", {"y_true": probs(2, 3), "y_pred": ru(0.1, 1, 2, 3)}, {"axis": int(I64MIN)},
        expect="error", names=("axis",))
    add(id, "label_smoothing 1.5", {"y_true": probs(2, 3), "y_pred": ru(0.1, 1, 2, 3)}, {"label_smoothing": 1.5},
        expect="error", names=("label_smoothing",))
    add(id, "label_smoothing -0.1", {"y_true": probs(2, 3), "y_pred": ru(0.1, 1, 2, 3)},
        {"label_smoothing": -0.1}, expect="either", names=("label_smoothing",))
    add(id, "label_smoothing nan", {"y_true": probs(2, 3), "y_pred": ru(0.1, 1, 2, 3)},
        {"label_smoothing": math.nan}, expect="either", names=("label_smoothing",))
    add(id, "shape mismatch", {"y_true": probs(2, 3), "y_pred": ru(0.1, 1, 2, 4)}, names=("y_true", "y_pred"))
    add(id, "0-d", {"y_true": np.array(1.0), "y_pred": np.array(0.5)}, expect="either")
    yt, yp = probs(4, 3), ru(0.1, 1, 4, 3)
    for r in reds:
        add(id, f"sw (4,) {r}", {"y_true": yt, "y_pred": yp, "sample_weight": ru(0.1, 2, 4)}, {"reduction": r})
        add(id, f"sw zeros {r}", {"y_true": yt, "y_pred": yp, "sample_weight": np.zeros(4)}, {"reduction": r})
        add(id, f"sw 0-d {r}", {"y_true": yt, "y_pred": yp, "sample_weight": np.array(2.0)}, {"reduction": r})
    add(id, "sw (5,)", {"y_true": yt, "y_pred": yp, "sample_weight": ru(0.1, 2, 5)}, names=("sample_weight",))
    add(id, "y_true int one-hot", {"y_true": np.eye(3, dtype=np.int64)[[0, 1, 2, 0]], "y_pred": yp},
        expect="either")


def sparse_cat():
    id = "sparse_categorical_crossentropy"
    reds = keras_reds(id)
    for fl in [False, True]:
        for r in reds:
            for s in [(1, 1), (4, 1), (0, 4), (2, 3, 4), (1, 30000), (5,)]:
                yp = rn(*s, s=2) if fl else ru(0.01, 1, *s)
                lab = ri(0, s[-1], *s[:-1]) if s[-1] > 0 else np.zeros(s[:-1], np.int64)
                add(id, f"shape {s} logits={fl} {r}", {"y_true": lab, "y_pred": yp},
                    {"reduction": r, "from_logits": fl}, keras_native=True)
            add(id, f"labels (4,1) logits={fl} {r}", {"y_true": ri(0, 3, 4, 1), "y_pred": ru(0.1, 1, 4, 3)},
                {"reduction": r, "from_logits": fl})
            for ign in [0, -1, 2, 9]:
                lab = np.array([0, ign, 1, ign, 2]) if ign != 9 else np.array([0, 1, 9, 2, 9])
                add(id, f"ignore_class={ign} logits={fl} {r}", {"y_true": lab, "y_pred": ru(0.1, 1, 5, 3)},
                    {"reduction": r, "from_logits": fl, "ignore_class": ign})
            add(id, f"all ignored logits={fl} {r}", {"y_true": np.full(3, -1), "y_pred": ru(0.1, 1, 3, 3)},
                {"reduction": r, "from_logits": fl, "ignore_class": -1})
            add(id, f"ignored with sw logits={fl} {r}", {"y_true": np.array([0, -1, 2]), "y_pred": ru(0.1, 1, 3, 3),
                                                         "sample_weight": ru(0.1, 2, 3)},
                {"reduction": r, "from_logits": fl, "ignore_class": -1})
        if fl:
            yp = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [3e38, -3e38, 0.0], [0.0, 0.0, 0.0]])
        else:
            yp = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1e-300, 1.0, 5.0]])
        add(id, f"extremes logits={fl}", {"y_true": np.array([0, 0, 2, 1]), "y_pred": yp},
            {"reduction": "none", "from_logits": fl}, keras_native=True)
    yp = ru(0.1, 1, 3, 4)
    add(id, "label out of range 4", {"y_true": np.array([0, 4, 1]), "y_pred": yp}, expect="error",
        names=("y_true",))
    add(id, "label -1 no ignore", {"y_true": np.array([0, -1, 1]), "y_pred": yp}, expect="error",
        names=("y_true",))
    add(id, "label i64 min", {"y_true": np.array([0, I64MIN, 1]), "y_pred": yp}, expect="error",
        names=("y_true",))
    add(id, "label i64 max", {"y_true": np.array([0, I64MAX, 1]), "y_pred": yp}, expect="error",
        names=("y_true",))
    add(id, "label 2**32 (int32 wrap)", {"y_true": np.array([0, 2**32, 1]), "y_pred": yp}, expect="error",
        names=("y_true",))
    add(id, "label uint64 huge", {"y_true": np.array([0, 2**64 - 1, 1], np.uint64), "y_pred": yp},
        expect="error", names=("y_true",))
    add(id, "labels float", {"y_true": np.array([0.0, 1.0, 2.0]), "y_pred": yp}, expect="either",
        names=("y_true",))
    add(id, "labels wrong shape", {"y_true": np.array([0, 1]), "y_pred": yp}, names=("y_true", "y_pred"))
    add(id, "axis 0", {"y_true": np.array([0, 1, 2, 0]), "y_pred": yp}, {"axis": 0}, expect="either",
        names=("axis",))
    add(id, "axis 5", {"y_true": np.array([0, 1, 2]), "y_pred": yp}, {"axis": 5}, expect="error", names=("axis",))
    add(id, "ignore_class i64min", {"y_true": np.array([0, 1, 2]), "y_pred": yp}, {"ignore_class": int(I64MIN)})
    add(id, "ignore_class None explicit", {"y_true": np.array([0, 1, 2]), "y_pred": yp}, {"ignore_class": "None"})
    add(id, "0-d y_pred", {"y_true": np.array(0), "y_pred": np.array(0.5)}, expect="either")


def keras_binary():
    id = "binary_crossentropy"
    reds = keras_reds(id)
    for fl in [False, True]:
        for r in reds:
            for s in [(1,), (1, 1), (4, 1), (7,), (0, 4), (4, 0), (2, 3, 4), ()]:
                yp = rn(*s, s=2) if fl else ru(0, 1, *s)
                add(id, f"shape {s} logits={fl} {r}", {"y_true": ru(0, 1, *s), "y_pred": yp},
                    {"reduction": r, "from_logits": fl}, keras_native=True)
        if fl:
            yp = np.array([1e4, -1e4, 1e4, -1e4, 0.0, 3e38, -3e38, -100.0])
        else:
            yp = np.array([0.0, 1.0, 1.0, 0.0, 0.5, 1e-300, 1.0, 1e-8])
        yt = np.array([1.0, 0.0, 1.0, 0.0, 0.5, 0.0, 1.0, 1.0])
        for ls in [0.0, 1.0, 0.2]:
            add(id, f"extremes logits={fl} ls={ls}", {"y_true": yt.reshape(2, 4), "y_pred": yp.reshape(2, 4)},
                {"reduction": "none", "from_logits": fl, "label_smoothing": ls}, keras_native=True)
        for ax in [0, 1, -3, 2]:
            add(id, f"axis {ax} logits={fl}", {"y_true": ru(0, 1, 2, 3, 4), "y_pred": rn(2, 3, 4) if fl
                                               else ru(0, 1, 2, 3, 4)},
                {"axis": ax, "from_logits": fl, "reduction": "none"})
    add(id, "axis 3", {"y_true": ru(0, 1, 2, 3), "y_pred": ru(0, 1, 2, 3)}, {"axis": 3}, expect="error",
        names=("axis",))
    add(id, "axis i64 max", {"y_true": ru(0, 1, 2, 3), "y_pred": ru(0, 1, 2, 3)}, {"axis": int(I64MAX)},
        expect="error", names=("axis",))
    add(id, "label_smoothing 2", {"y_true": ru(0, 1, 2, 3), "y_pred": ru(0, 1, 2, 3)}, {"label_smoothing": 2.0},
        expect="error", names=("label_smoothing",))
    add(id, "label_smoothing nan", {"y_true": ru(0, 1, 2, 3), "y_pred": ru(0, 1, 2, 3)},
        {"label_smoothing": math.nan}, expect="either", names=("label_smoothing",))
    add(id, "shape mismatch", {"y_true": ru(0, 1, 2, 3), "y_pred": ru(0, 1, 2, 4)}, names=("y_true", "y_pred"))
    yt, yp = ru(0, 1, 4, 3), ru(0, 1, 4, 3)
    for r in reds:
        add(id, f"sw (4,) {r}", {"y_true": yt, "y_pred": yp, "sample_weight": ru(0.1, 2, 4)}, {"reduction": r})
        add(id, f"sw zeros {r}", {"y_true": yt, "y_pred": yp, "sample_weight": np.zeros(4)}, {"reduction": r})
        add(id, f"1-d with sw 0-d {r}", {"y_true": yt[0], "y_pred": yp[0], "sample_weight": np.array(2.0)},
            {"reduction": r})
    add(id, "y_true (4,) y_pred (4,1)", {"y_true": yt[:, 0], "y_pred": yp[:, :1]}, {"reduction": "none"})
    add(id, "int y_true", {"y_true": ri(0, 2, 4, 3), "y_pred": yp}, expect="either")


def squared_hinge():
    id = "squared_hinge"
    reds = keras_reds(id)
    for r in reds:
        for s in [(1,), (1, 1), (4, 1), (0, 3), (3, 0), (2, 3, 4), ()]:
            add(id, f"pm1 shape {s} {r}", {"y_true": np.sign(rn(*s)) + (rn(*s) == 0), "y_pred": rn(*s)},
                {"reduction": r})
            add(id, f"01 int shape {s} {r}", {"y_true": ri(0, 2, *s), "y_pred": rn(*s)}, {"reduction": r})
        add(id, f"all zeros labels {r}", {"y_true": np.zeros((2, 3)), "y_pred": rn(2, 3)}, {"reduction": r})
        add(id, f"bool labels {r}", {"y_true": rn(2, 3) > 0, "y_pred": rn(2, 3)}, {"reduction": r},
            expect="either")
        add(id, f"mixed 0/-1/1 {r}", {"y_true": np.array([[0.0, -1, 1], [1, 1, 0]]), "y_pred": rn(2, 3)},
            {"reduction": r})
        add(id, f"extremes {r}", {"y_true": np.array([[1.0, -1, 1, -1]]), "y_pred": np.array([[1e4, 1e4, -3e38,
                                                                                              1e200]])},
            {"reduction": r})
        add(id, f"sw (2,) {r}", {"y_true": np.array([[1.0, -1, 1], [-1, 1, 1]]), "y_pred": rn(2, 3),
                                 "sample_weight": ru(0.1, 2, 2)}, {"reduction": r})
        add(id, f"at kink {r}", {"y_true": np.array([1.0, -1.0]), "y_pred": np.array([1.0, -1.0])},
            {"reduction": r})
        add(id, f"soft labels {r}", {"y_true": np.array([[0.5, -0.3, 2.0]]), "y_pred": rn(1, 3)}, {"reduction": r})
    add(id, "shape mismatch", {"y_true": np.ones((2, 3)), "y_pred": rn(2, 4)}, names=("y_true", "y_pred"))
    add(id, "y_true (4,) y_pred (4,1)", {"y_true": np.ones(4), "y_pred": rn(4, 1)}, {"reduction": "none"})
    add(id, "sw wrong", {"y_true": np.ones((2, 3)), "y_pred": rn(2, 3), "sample_weight": ru(0.1, 1, 3)},
        names=("sample_weight",))


def multiclass_hinge():
    id = "multiclass_hinge"
    for s in [(1,), (4, 1), (5,), (0, 3), (2, 0), (2, 3, 4), (3, 30000)]:
        C = s[-1]
        lab = ri(0, C, *s[:-1]) if C > 0 else np.zeros(s[:-1], np.int64)
        add(id, f"shape {s}", {"scores": rn(*s, s=2), "labels": lab})
    add(id, "extremes", {"scores": np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 3e38], [0, 0, 0.0]]),
                         "labels": np.array([0, 0, 1])})
    add(id, "ties", {"scores": np.array([[1.0, 2.0, 2.0], [0.0, 0.0, 0.0], [3.0, 1.0, 1.0]]),
                     "labels": np.array([0, 1, 0])})
    add(id, "uint8 labels", {"scores": rn(3, 4), "labels": np.array([0, 3, 2], np.uint8)})
    add(id, "bool labels", {"scores": rn(3, 2), "labels": np.array([True, False, True])}, expect="either")
    add(id, "label out of range", {"scores": rn(3, 4), "labels": np.array([0, 4, 1])}, expect="error",
        names=("labels",))
    add(id, "label -1", {"scores": rn(3, 4), "labels": np.array([0, -1, 1])}, expect="error", names=("labels",))
    add(id, "label i64min", {"scores": rn(3, 4), "labels": np.array([0, I64MIN, 1])}, expect="error",
        names=("labels",))
    add(id, "label i64max", {"scores": rn(3, 4), "labels": np.array([0, I64MAX, 1])}, expect="error",
        names=("labels",))
    add(id, "labels wrong shape", {"scores": rn(3, 4), "labels": np.array([0, 1])}, expect="error",
        names=("labels", "scores"))
    add(id, "labels broadcast (1,)", {"scores": rn(3, 4), "labels": np.array([1])}, expect="either",
        names=("labels", "scores"))
    add(id, "0-d scores", {"scores": rn(), "labels": np.array(0)}, expect="either")
    add(id, "float labels", {"scores": rn(3, 4), "labels": np.array([0.0, 1.0, 2.0])}, expect="either",
        names=("labels",))


def margin_ranking():
    id = "margin_ranking"
    for r in TORCH_RED:
        for s in [(), (1,), (0,), (5,)]:
            add(id, f"shape {s} {r}", {"input1": rn(*s), "input2": rn(*s), "target": np.sign(rn(*s)) + 0.0},
                {"reduction": r, "margin": 0.3})
        add(id, f"target 0 {r}", {"input1": rn(3), "input2": rn(3), "target": np.zeros(3)},
            {"reduction": r, "margin": 0.5})
        add(id, f"int target {r}", {"input1": rn(3), "input2": rn(3), "target": np.array([1, -1, 1])},
            {"reduction": r})
        add(id, f"extremes {r}", {"input1": np.array([1e4, -1e4, 3e38, 0.0]), "input2": np.array([-1e4, 1e4,
                                                                                                 -3e38, 0.0]),
                                  "target": np.array([1.0, 1.0, -1.0, 1.0])}, {"reduction": r})
        for m in [-1.0, math.inf, -math.inf, 1e300]:
            add(id, f"margin {m} {r}", {"input1": rn(3), "input2": rn(3), "target": np.array([1.0, -1.0, 1.0])},
                {"reduction": r, "margin": m}, expect="either", names=("margin",))
        add(id, f"broadcast equal rank {r}", {"input1": rn(3, 1), "input2": rn(1, 4), "target": np.ones((3, 4))},
            {"reduction": r}, expect="either")
        add(id, f"2-d {r}", {"input1": rn(2, 3), "input2": rn(2, 3), "target": np.ones((2, 3))},
            {"reduction": r}, expect="either")
        add(id, f"at kink {r}", {"input1": np.array([1.0]), "input2": np.array([1.0]), "target": np.array([1.0])},
            {"reduction": r})
    add(id, "margin nan", {"input1": rn(3), "input2": rn(3), "target": np.ones(3)}, {"margin": math.nan},
        expect="either", names=("margin",))
    add(id, "rank mismatch target 0-d", {"input1": rn(3), "input2": rn(3), "target": np.array(1.0)},
        names=("target",))
    add(id, "size mismatch", {"input1": rn(3), "input2": rn(4), "target": np.ones(3)}, names=("input2", "input1"))
    add(id, "target 2", {"input1": rn(3), "input2": rn(3), "target": np.array([1.0, 2.0, -1.0])},
        expect="either", names=("target",))


def cosine_similarity():
    id = "cosine_similarity"
    reds = keras_reds(id)
    for r in reds:
        for s in [(1,), (1, 1), (4, 1), (7,), (0, 3), (3, 0), (2, 3, 4), ()]:
            # D = 1: the cosine is the constant sign, its gradient 0 only by cancellation;
            # 0-d: no valid axis (catalogue: "a valid axis of y_pred"), Keras still answers
            add(id, f"shape {s} {r}", {"y_true": rn(*s), "y_pred": rn(*s)}, {"reduction": r},
                scale=1.0 if s and s[-1] == 1 else None, expect="either" if s == () else "ref")
        add(id, f"zero vectors {r}", {"y_true": np.array([[0.0, 0, 0], [1, 2, 3], [0, 0, 0]]),
                                      "y_pred": np.array([[1.0, 2, 3], [0, 0, 0], [0, 0, 0]])}, {"reduction": r},
            expect="ref")
        add(id, f"tiny norms {r}", {"y_true": np.array([[1e-9, 0, 0], [1e-300, 1e-300, 0]]),
                                    "y_pred": np.array([[1e-8, 2e-8, 0], [1.0, 2.0, 3.0]])}, {"reduction": r})
        add(id, f"huge {r}", {"y_true": np.array([[1e4, -1e4, 3e38], [1e200, 1e200, 1.0]]),
                              "y_pred": np.array([[1e4, 1e4, 1.0], [1e200, -1e200, 1.0]])}, {"reduction": r},
            keras_native=True)
        add(id, f"sw (2,) {r}", {"y_true": rn(2, 3), "y_pred": rn(2, 3), "sample_weight": ru(0.1, 2, 2)},
            {"reduction": r})
    for ax in [0, 1, 2, -1, -2, -3]:
        add(id, f"axis {ax}", {"y_true": rn(2, 3, 4), "y_pred": rn(2, 3, 4)}, {"axis": ax, "reduction": "none"})
    add(id, "axis 3", {"y_true": rn(2, 3, 4), "y_pred": rn(2, 3, 4)}, {"axis": 3}, expect="error", names=("axis",))
    add(id, "axis -4", {"y_true": rn(2, 3, 4), "y_pred": rn(2, 3, 4)}, {"axis": -4}, expect="error",
        names=("axis",))
    add(id, "axis i64min", {"y_true": rn(2, 3), "y_pred": rn(2, 3)}, {"axis": int(I64MIN)}, expect="error",
        names=("axis",))
    add(id, "0-d axis 0", {"y_true": rn(), "y_pred": rn()}, {"axis": 0}, names=("axis",), expect="either")
    add(id, "shape mismatch", {"y_true": rn(2, 3), "y_pred": rn(2, 4)}, names=("y_true", "y_pred"))
    add(id, "sw wrong", {"y_true": rn(2, 3), "y_pred": rn(2, 3), "sample_weight": ru(0.1, 1, 3)},
        names=("sample_weight",))


def triplet_margin():
    id = "triplet_margin"
    for r in TORCH_RED:
        for s in [(1,), (4,), (1, 1), (0, 3), (3, 0), (2, 3, 4), (5, 4)]:
            add(id, f"shape {s} {r}", {"anchor": rn(*s), "positive": rn(*s), "negative": rn(*s)}, {"reduction": r})
        for p in [1.0, 3.0, 0.5, math.inf, 1e-3]:
            add(id, f"p={p} {r}", {"anchor": rn(4, 3), "positive": rn(4, 3), "negative": rn(4, 3)},
                {"reduction": r, "p": p})
        for e in [0.0, -1e-6, 1e4]:
            add(id, f"eps={e} {r}", {"anchor": rn(4, 3), "positive": rn(4, 3), "negative": rn(4, 3)},
                {"reduction": r, "eps": e, "swap": True})
        add(id, f"identical points eps=0 {r}", {"anchor": np.ones((2, 3)), "positive": np.ones((2, 3)),
                                                "negative": np.zeros((2, 3))}, {"reduction": r, "eps": 0.0})
        add(id, f"extremes {r}", {"anchor": np.array([[1e4, -1e4], [1e200, 0.0]]),
                                  "positive": np.array([[-1e4, 1e4], [-1e200, 0.0]]),
                                  "negative": np.array([[0.0, 0.0], [0.0, 1.0]])}, {"reduction": r})
        add(id, f"broadcast (1,3) {r}", {"anchor": rn(4, 3), "positive": rn(1, 3), "negative": rn(4, 3)},
            {"reduction": r}, expect="either")
        add(id, f"margin huge {r}", {"anchor": rn(4, 3), "positive": rn(4, 3), "negative": rn(4, 3)},
            {"reduction": r, "margin": 1e300})
    add(id, "0-d", {"anchor": rn(), "positive": rn(), "negative": rn()}, names=("anchor",))
    for m in [0.0, -1.0]:
        add(id, f"margin {m}", {"anchor": rn(4, 3), "positive": rn(4, 3), "negative": rn(4, 3)}, {"margin": m},
            expect="error", names=("margin",))
    for p in [0.0, -1.0]:
        add(id, f"p {p}", {"anchor": rn(4, 3), "positive": rn(4, 3), "negative": rn(4, 3)}, {"p": p},
            expect="either", names=("p",))
    for k, v in [("margin", math.nan), ("margin", math.inf), ("p", math.nan), ("eps", math.nan),
                 ("eps", math.inf)]:
        add(id, f"{k}={v}", {"anchor": rn(4, 3), "positive": rn(4, 3), "negative": rn(4, 3)}, {k: v},
            expect="either", names=(k,))
    add(id, "rank mismatch", {"anchor": rn(4, 3), "positive": rn(3), "negative": rn(4, 3)},
        names=("positive", "anchor"))
    add(id, "size mismatch", {"anchor": rn(4, 3), "positive": rn(4, 2), "negative": rn(4, 3)},
        names=("positive", "anchor"))


BUILDERS = {
    "mse": lambda: torch_pointwise("mse"), "l1": lambda: torch_pointwise("l1"),
    "huber": lambda: torch_pointwise("huber"), "smooth_l1": lambda: torch_pointwise("smooth_l1"),
    "log_cosh": lambda: keras_pair("log_cosh"),
    "mean_absolute_percentage_error": lambda: keras_pair("mean_absolute_percentage_error"),
    "mean_squared_logarithmic_error": lambda: keras_pair("mean_squared_logarithmic_error"),
    "poisson": lambda: keras_pair("poisson"), "kl_divergence": lambda: keras_pair("kl_divergence"),
    "log_softmax": log_softmax, "cross_entropy": lambda: ce_like("cross_entropy"), "nll": lambda: ce_like("nll"),
    "binary_cross_entropy": bce, "binary_cross_entropy_with_logits": bce_logits,
    "categorical_crossentropy": lambda: keras_cat("categorical_crossentropy"),
    "sparse_categorical_crossentropy": sparse_cat, "binary_crossentropy": keras_binary,
    "squared_hinge": squared_hinge, "multiclass_hinge": multiclass_hinge, "margin_ranking": margin_ranking,
    "cosine_similarity": cosine_similarity, "triplet_margin": triplet_margin,
}

# a small valid base case per id (for the generic error cases)
BASE = {
    "mse": ({"input": rn(3, 4), "target": rn(3, 4)}, {}),
    "l1": ({"input": rn(3, 4), "target": rn(3, 4)}, {}),
    "huber": ({"input": rn(3, 4), "target": rn(3, 4)}, {}),
    "smooth_l1": ({"input": rn(3, 4), "target": rn(3, 4)}, {}),
    "log_cosh": ({"y_true": rn(3, 4), "y_pred": rn(3, 4)}, {}),
    "mean_absolute_percentage_error": ({"y_true": rn(3, 4), "y_pred": rn(3, 4)}, {}),
    "mean_squared_logarithmic_error": ({"y_true": ru(0, 2, 3, 4), "y_pred": ru(0, 2, 3, 4)}, {}),
    "poisson": ({"y_true": ru(0, 2, 3, 4), "y_pred": ru(0.1, 2, 3, 4)}, {}),
    "kl_divergence": ({"y_true": probs(3, 4), "y_pred": probs(3, 4)}, {}),
    "log_softmax": ({"input": rn(3, 4)}, {"dim": 1}),
    "cross_entropy": ({"input": rn(3, 4), "target": ri(0, 4, 3)}, {}),
    "nll": ({"input": rn(3, 4), "target": ri(0, 4, 3)}, {}),
    "binary_cross_entropy": ({"input": ru(0, 1, 3, 4), "target": ru(0, 1, 3, 4)}, {}),
    "binary_cross_entropy_with_logits": ({"input": rn(3, 4), "target": ru(0, 1, 3, 4)}, {}),
    "categorical_crossentropy": ({"y_true": probs(3, 4), "y_pred": ru(0.1, 1, 3, 4)}, {}),
    "sparse_categorical_crossentropy": ({"y_true": ri(0, 4, 3), "y_pred": ru(0.1, 1, 3, 4)}, {}),
    "binary_crossentropy": ({"y_true": ru(0, 1, 3, 4), "y_pred": ru(0, 1, 3, 4)}, {}),
    "squared_hinge": ({"y_true": np.sign(rn(3, 4)), "y_pred": rn(3, 4)}, {}),
    "multiclass_hinge": ({"scores": rn(3, 4), "labels": ri(0, 4, 3)}, {}),
    "margin_ranking": ({"input1": rn(4), "input2": rn(4), "target": np.array([1.0, -1, 1, -1])}, {}),
    "cosine_similarity": ({"y_true": rn(3, 4), "y_pred": rn(3, 4)}, {}),
    "triplet_margin": ({"anchor": rn(3, 4), "positive": rn(3, 4), "negative": rn(3, 4)}, {}),
}


def npy_bytes(a, version=None):
    import io
    f = io.BytesIO()
    np.lib.format.write_array(f, np.asarray(a), version=version, allow_pickle=False)
    return f.getvalue()


def generic(id):
    e = CAT[id]
    args, opts = BASE[id]
    req = e.required_args()
    # every base case itself, both dtypes, and with layout variants
    add(id, "base", args, opts)
    # unknown id / arg / option, missing args/options, malformed flags
    add(id, "unknown arg", args, opts, cli=["ID", "ARGS", "--arg", "bogus=FILE0", "OPTS"], expect="error",
        names=("bogus",), dtypes=("float64",))
    add(id, "unknown option", args, opts, cli=["ID", "ARGS", "OPTS", "--opt", "bogus=1"], expect="error",
        names=("bogus",), dtypes=("float64",))
    add(id, "--opt without =", args, opts, cli=["ID", "ARGS", "OPTS", "--opt", "reduction"], expect="error",
        dtypes=("float64",))
    add(id, "--arg without =", args, opts, cli=["ID", "ARGS", "OPTS", "--arg", "FILE0"], expect="error",
        dtypes=("float64",))
    add(id, "--arg file missing", args, opts, cli=["ID", "ARGS", "OPTS", "--arg", f"{req[0]}=/nonexistent/x.npy"],
        expect="either", dtypes=("float64",))
    add(id, "unknown flag", args, opts, cli=["ID", "ARGS", "OPTS", "--frobnicate"], expect="error",
        dtypes=("float64",))
    add(id, "positional extra", args, opts, cli=["ID", "extra", "ARGS", "OPTS"], expect="error",
        dtypes=("float64",))
    add(id, "arg twice", args, opts, cli=["ID", "ARGS", "ARGS", "OPTS"], expect="either", dtypes=("float64",))
    if e.options:
        o0 = e.options[0]["name"]
        add(id, "option twice", args, opts, cli=["ID", "ARGS", "OPTS", "--opt",
                                                 f"{o0}={e.options[0]['default'] if e.options[0]['type'] != 'bool' else 'false'}",
                                                 "--opt", f"{o0}={e.options[0]['default'] if e.options[0]['type'] != 'bool' else 'false'}"],
            expect="either", dtypes=("float64",))
    for n in req:
        a2 = {k: v for k, v in args.items() if k != n}
        add(id, f"missing {n}", a2, opts, expect="error", names=(n,), dtypes=("float64",))
    # bad option values
    for o in e.options:
        n, t = o["name"], o["type"]
        bads = {"float": ["abc", "", "1.0.0", "0x10"], "int": ["1.5", "abc", "", "99999999999999999999"],
                "bool": ["maybe", "1", "", "yes"], "enum": ["bogus", "", "MEAN"]}[t]
        for b in bads:
            o2 = dict(opts)
            o2[n] = b
            add(id, f"option {n}={b!r}", args, o2, expect="error", names=(n,), dtypes=("float64",), raw_opts=True)
        if t == "float":
            for v in [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, -1e308]:
                o2 = dict(opts)
                o2[n] = v
                add(id, f"option {n}={v}", args, o2, expect="either", names=(n,))
        if t == "int":
            for v in [int(I64MIN), int(I64MAX), 0, -1]:
                o2 = dict(opts)
                o2[n] = v
                add(id, f"option {n}={v}", args, o2, expect="either", names=(n,))
    # dtype problems
    float_args = [a["name"] for a in e.args if a["dtype"] == "float" and a["name"] in args]
    for n in float_args:
        a2 = dict(args)
        a2[n] = np.asarray(args[n]).round().astype(np.int64)
        add(id, f"int array for float {n}", a2, opts, expect="error", names=(n,), dtypes=("float64",))
        a2 = dict(args)
        a2[n] = np.asarray(args[n]) > 0
        add(id, f"bool array for float {n}", a2, opts, expect="error", names=(n,), dtypes=("float64",))
    fl = [n for n, v in args.items() if np.asarray(v).dtype.kind == "f"]
    if len(fl) >= 2:
        add(id, "mixed f32/f64", args, opts, expect="error", names=tuple(fl), dtypes=("mixed",))
    # corrupt files for every given argument
    for n, v in args.items():
        a = np.asarray(v)
        good = npy_bytes(a)
        corrupt = {
            "truncated": good[:-3],
            "truncated header": good[:20],
            "empty file": b"",
            "bad magic": b"\x93NUMPX" + good[6:],
            "version 9": good[:6] + b"\x09\x00" + good[8:],
            "trailing bytes": good + b"\0\0\0\0\0\0\0\0",
            "garbage header": good[:10] + b"{'descr': <f8, ???" + good[28:],
            "huge shape": npy_bytes(np.zeros(1))[:0] + _hdr(a.dtype.str, "(1000000000000, 1000000000)") + a.tobytes(),
            "huge shape overflow": _hdr(a.dtype.str, "(9223372036854775807, 9223372036854775807)") + a.tobytes(),
            "negative shape": _hdr(a.dtype.str, "(-3,)") + a.tobytes(),
            "float16": npy_bytes(a.astype(np.float16)),
            "complex": npy_bytes(a.astype(np.complex128)),
            "unicode": npy_bytes(np.array(["ab", "c"])),
            "structured": npy_bytes(np.zeros(3, dtype=[("a", "<f8"), ("b", "<i4")])),
            "object pickle": _hdr("|O", "(1,)") + b"\x80\x04N.",
            "header len huge": good[:8] + b"\xff\xff" + good[10:],
            "not a dict": _hdr_raw("[1, 2, 3]") + a.tobytes(),
            "fortran key str": _hdr_raw("{'descr': '%s', 'fortran_order': 'no', 'shape': %s, }" %
                                        (a.dtype.str, _shape_txt(a.shape))) + a.tobytes(),
        }
        # valid but empty arrays whose other axes are huge: no crash (an error is fine)
        for k, shp in [("empty huge trailing", "(0, 1000000000000)"), ("empty huge leading", "(1000000000000, 0)"),
                       ("empty overflow", "(0, 9223372036854775807, 9223372036854775807)")]:
            add(id, f"{k} {n}", args, opts, raw={n: _hdr(a.dtype.str, shp)}, expect="either", dtypes=("float64",))
        for k, b in corrupt.items():
            add(id, f"corrupt {n}: {k}", args, opts, raw={n: b}, expect="error", names=(n,), dtypes=("float64",))
        # valid layout variants must be accepted
        for var, b in [("v2", npy_bytes(a, (2, 0))), ("v3", npy_bytes(a, (3, 0))),
                       ("big", npy_bytes(a.astype(a.dtype.newbyteorder(">"))) if a.dtype.itemsize > 1 else good),
                       ("fortran", npy_bytes(np.asfortranarray(a)))]:
            add(id, f"layout {n} {var}", args, opts, raw={n: b}, expect="ok", dtypes=("float64",))
        # 0-d, empty, zero-size variants of this argument (no panic; agree where both succeed)
        for k, rep in [("0-d", np.asarray(a.flat[0] if a.size else 0, dtype=a.dtype)),
                       ("empty", np.zeros((0,), a.dtype)), ("zeros shape", np.zeros((0,) + a.shape, a.dtype)),
                       ("extra axis", a[None]), ("size-1 axis", a.reshape(a.shape + (1,)))]:
            a2 = dict(args)
            a2[n] = rep
            add(id, f"{k} {n}", a2, opts, expect="either", names=(n,))
    # optional float args absent/present with weird shapes
    for a in e.args:
        if a["optional"] and a["name"] not in args:
            shp = np.asarray(args[req[-1] if req[-1] in args else req[0]]).shape
            for k, rep in [("0-d", np.array(0.5)), ("empty", np.zeros(0)), ("bad", np.ones((7, 7, 7))),
                           ("int", np.ones(shp, np.int64)), ("nan", np.full(shp, np.nan))]:
                a2 = dict(args)
                a2[a["name"]] = rep
                add(id, f"optional {a['name']} {k}", a2, opts, expect="either" if k != "int" else "error",
                    names=(a["name"],))


def _shape_txt(s):
    return "()" if len(s) == 0 else ("(%d,)" % s[0] if len(s) == 1 else "(" + ", ".join(map(str, s)) + ")")


def _hdr_raw(d):
    h = d + " "
    tot = 10 + len(h) + 1
    h += " " * ((64 - tot % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h.encode()


def _hdr(descr, shape):
    return _hdr_raw("{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape))


# Case() does not know raw_opts; patch add to accept it
_add = add


def add(*a, raw_opts=False, **k):  # noqa: F811
    c = Case(*a, **k)
    c.raw_opts = raw_opts
    CASES.append(c)


# ------------------------------------------------------------------------------------------
# running


def fmt(v, typ):
    if isinstance(v, str):
        return v
    if typ == "bool":
        return "true" if v else "false"
    if typ == "float":
        v = float(v)
        return "nan" if math.isnan(v) else ("inf" if v == math.inf else ("-inf" if v == -math.inf else repr(v)))
    return str(v)


def reference(case, run_args, opts, dt_ref, grad_names):
    L = core.REGISTRY[case.id]
    e = CAT[case.id]
    full = e.defaults()
    for k, v in opts.items():
        o = e.opt_by_name.get(k)
        if v == "None":
            full[k] = None if o and o["type"] != "enum" else "none"
        else:
            full[k] = v
    ref_args = {n: (v.astype(dt_ref) if v.dtype.kind == "f" else v) for n, v in run_args.items()}
    loss, grads = core.evaluate(L, e, ref_args, full, grad_names, dt_ref)
    return np.asarray(loss, np.float64), {n: np.asarray(g, np.float64) for n, g in grads.items()}


def r32(x):
    with np.errstate(over="ignore", under="ignore"):
        return np.asarray(x, np.float64).astype(np.float32).astype(np.float64)


class Job:
    def __init__(self, case, dtype, k, workdir):
        self.case, self.dtype, self.k = case, dtype, k
        self.dir = os.path.join(workdir, case.id, f"{k}-{dtype}")
        # float32 runs on inputs near the float32 limit: losskit computes in float32 (as the
        # references do natively), so an intermediate like x - y or 2 (x - y) may overflow
        # where the float64 reference stays finite; reported as KNOWN, not as FAIL
        self.known = dtype == "float32" and any(
            np.asarray(v).dtype.kind == "f" and np.asarray(v).size and np.nanmax(np.abs(np.where(
                np.isinf(np.asarray(v)), 0, np.asarray(v)))) > 1e38 for v in case.args.values())
        self.problems = []
        self.ref = None  # (loss, grads) or exception text
        self.ref_alt = None

    def prepare(self):
        c, dt = self.case, self.dtype
        os.makedirs(os.path.join(self.dir, "in"), exist_ok=True)
        self.out = os.path.join(self.dir, "out")
        if self.k % 2:
            os.makedirs(self.out, exist_ok=True)
        np_dt = {"float32": np.float32, "float64": np.float64, "mixed": None}[dt]
        run_args = {}
        nfl = 0
        for n, v in c.args.items():
            a = np.asarray(v)
            if a.dtype.kind == "f":
                if np_dt is None:
                    a = a.astype(np.float32 if nfl == 0 else np.float64)
                    nfl += 1
                else:
                    a = a.astype(np_dt)
            run_args[n] = a
        self.run_args = run_args
        e = CAT[c.id]
        paths = {}
        for i, (n, a) in enumerate(run_args.items()):
            p = os.path.join(self.dir, "in", f"{i}_{n}.npy")
            if c.raw and n in c.raw:
                with open(p, "wb") as f:
                    f.write(c.raw[n])
            else:
                np.save(p, a)
            paths[n] = p
        argtoks = []
        for n, p in paths.items():
            argtoks += ["--arg", f"{n}={p}"]
        opttoks = []
        for n, v in c.opts.items():
            typ = e.opt_by_name[n]["type"] if n in e.opt_by_name else "enum"
            opttoks += ["--opt", f"{n}={fmt(v, typ)}"]
        if c.cli:
            cmd = [BIN, "eval"]
            first = next(iter(paths.values()), "/nonexistent")
            for t in c.cli:
                if t == "ID":
                    cmd.append(c.id)
                elif t == "ARGS":
                    cmd += argtoks
                elif t == "OPTS":
                    cmd += opttoks
                else:
                    cmd.append(t.replace("FILE0", first))
        else:
            cmd = [BIN, "eval", c.id] + argtoks + opttoks
        cmd += ["--grad", "--out", self.out]
        self.cmd = cmd
        # reference
        float_given = {n for n, a in run_args.items() if a.dtype.kind == "f"}
        self.grad_names = [n for n in e.grad_args() if n in float_given]
        if c.expect in ("ref", "either", "ok") and not c.raw and not c.cli and dt != "mixed" \
                and not getattr(c, "raw_opts", False):
            try:
                loss, grads = reference(c, run_args, c.opts, "float64", self.grad_names)
                if dt == "float32":
                    loss, grads = r32(loss), {n: r32(g) for n, g in grads.items()}
                self.ref = (loss, grads)
                if dt == "float32" and c.keras_native and core.REGISTRY[c.id].backend == "keras":
                    try:
                        l2, g2 = reference(c, run_args, c.opts, "float32", self.grad_names)
                        self.ref_alt = (l2, g2)
                    except Exception:
                        pass
            except Exception as ex:  # the reference raises
                self.ref = f"{type(ex).__name__}: {str(ex).splitlines()[0] if str(ex) else ''}"[:200]
        elif c.raw or c.cli or dt == "mixed" or getattr(c, "raw_opts", False):
            if c.expect == "ok":
                try:
                    self.ref = reference(c, {n: np.asarray(v) for n, v in run_args.items()}, c.opts, "float64",
                                         self.grad_names)
                except Exception as ex:
                    self.ref = f"{type(ex).__name__}: {ex}"[:200]

    def run(self):
        try:
            p = subprocess.run(self.cmd, capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:
            self.problems.append("TIMEOUT")
            return self
        self.rc, self.stdout, self.stderr = p.returncode, p.stdout.decode("utf-8", "replace"), \
            p.stderr.decode("utf-8", "replace")
        self.check()
        return self

    def error_ok(self):
        pr = []
        if self.rc != 2:
            pr.append(f"exit {self.rc} (want 2)")
        lines = self.stderr.splitlines()
        if len(lines) != 1 or not lines[0].startswith("error: "):
            pr.append(f"stderr not one 'error: ' line: {self.stderr[:300]!r}")
        if self.stdout:
            pr.append(f"stdout not empty: {self.stdout[:200]!r}")
        if os.path.isdir(self.out) and os.listdir(self.out):
            pr.append(f"files left in --out: {os.listdir(self.out)}")
        if self.case.names and lines and not any(n in lines[0] for n in self.case.names):
            pr.append(f"error does not name {'/'.join(self.case.names)}: {lines[0][:200]!r}")
        return pr

    def value_ok(self):
        pr = []
        loss_ref, grads_ref = self.ref
        try:
            out = json.loads(self.stdout)
        except ValueError:
            return [f"stdout not JSON: {self.stdout[:200]!r}"]
        dt = self.dtype
        if out.get("dtype") != dt:
            pr.append(f"json dtype {out.get('dtype')}")
        if out.get("shape") != list(loss_ref.shape):
            pr.append(f"json shape {out.get('shape')} != ref {list(loss_ref.shape)}")
        if out.get("id") != self.case.id:
            pr.append("json id")
        lp = os.path.join(self.out, "loss.npy")
        if not os.path.exists(lp):
            return pr + ["no loss.npy"]
        loss = np.load(lp)
        if loss.dtype != np.dtype(dt):
            pr.append(f"loss dtype {loss.dtype}")
        if loss.shape != loss_ref.shape:
            return pr + [f"loss shape {loss.shape} != ref {loss_ref.shape}"]
        tol = 2e-5 if dt == "float32" else 1e-9
        alt = self.ref_alt

        def cmp(x, ref, name, altref):
            ok, err, msg = compare.compare(x, ref, tol, self.case.scale)
            if not ok and altref is not None:
                ok2, _, _ = compare.compare(x, altref, tol, self.case.scale)
                if ok2:
                    return []
            return [] if ok else [f"{name}: {msg}"]
        pr += cmp(loss, loss_ref, "loss", alt[0] if alt else None)
        v = out.get("value")
        if loss_ref.ndim == 0:
            if v is None:
                pr.append("value null for scalar")
            else:
                fv = float(v) if not isinstance(v, str) else float(v.replace("inf", "inf"))
                lv = float(loss)
                if not ((math.isnan(fv) and math.isnan(lv)) or fv == lv or abs(fv - lv) <= 1e-6 * abs(lv)):
                    pr.append(f"json value {v} != loss {lv}")
        elif v is not None:
            pr.append("value not null for non-scalar")
        files = out.get("files", {})
        want = {"loss"} | {f"grad_{n}" for n in self.grad_names}
        opt_ok = {f"grad_{a['name']}" for a in CAT[self.case.id].args if a["grad"] and a["name"] in self.run_args}
        if not (want <= set(files) <= want | opt_ok):
            pr.append(f"files keys {sorted(files)} != {sorted(want)}")
        for n in self.grad_names:
            gp = os.path.join(self.out, f"grad_{n}.npy")
            if not os.path.exists(gp):
                pr.append(f"no grad_{n}.npy")
                continue
            g = np.load(gp)
            if g.shape != self.run_args[n].shape or g.dtype != np.dtype(dt):
                pr.append(f"grad_{n} {g.dtype}{g.shape} != {dt}{self.run_args[n].shape}")
                continue
            if self.case.grad and n in grads_ref:
                pr += cmp(g, grads_ref[n], f"grad_{n}", alt[1].get(n) if alt else None)
        return pr

    def check(self):
        c = self.case
        if self.rc == 101 or self.rc < 0 or "panicked" in self.stderr:
            self.problems.append(f"PANIC/CRASH rc={self.rc}: {self.stderr[:300]!r}")
            return
        ref_err = isinstance(self.ref, str)
        if c.expect == "error" or (c.expect == "ref" and ref_err) or (c.expect == "ok" and ref_err):
            if c.expect == "ok":
                self.problems.append(f"probe: reference raised for an ok case: {self.ref}")
            if self.rc == 0:
                why = f"reference raises {self.ref}" if ref_err else "contract error"
                self.problems.append(f"SUCCEEDED but should be an error ({why})")
            else:
                self.problems += self.error_ok()
            return
        if c.expect in ("ref", "ok"):
            if self.rc != 0:
                self.problems.append(f"ERRORED but reference is fine: rc={self.rc} {self.stderr.strip()[:300]!r}")
                return
            self.problems += self.value_ok()
            return
        # either
        if self.rc == 0:
            if isinstance(self.ref, tuple):
                self.problems += self.value_ok()
        else:
            self.problems += [p for p in self.error_ok() if not p.startswith("error does not name")] + \
                [p for p in self.error_ok() if p.startswith("error does not name")]
        self.note = "either:" + ("ok" if self.rc == 0 else "error") + (f" (ref {'raises' if ref_err else 'ok'})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ids")
    ap.add_argument("-v", action="store_true")
    ap.add_argument("--keep")
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--grep", help="only cases whose label contains this")
    a = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release")
    ids = [o["id"] for o in json.loads(subprocess.run([BIN, "list", "--json"], capture_output=True).stdout)]
    if a.ids:
        ids = [i for i in ids if i in a.ids.split(",")]
    for id in ids:
        BUILDERS[id]()
        generic(id)
    work = a.keep or tempfile.mkdtemp(prefix="losskit-probe-")
    jobs = []
    k = 0
    for c in CASES:
        if c.id not in ids or (a.grep and a.grep not in c.label):
            continue
        for dt in c.dtypes:
            k += 1
            jobs.append(Job(c, dt, k, work))
    stats = {id: [0, 0] for id in ids}
    fails = []
    known = []
    eithers = {}
    with cf.ThreadPoolExecutor(a.jobs) as pool:
        futs = []
        for j in jobs:
            try:
                j.prepare()
            except Exception as ex:
                j.problems.append(f"PROBE ERROR in prepare: {type(ex).__name__}: {ex}")
                j.cmd = None
            if j.cmd is None:
                futs.append(None)
                stats[j.case.id][1] += 1
                fails.append(j)
                continue
            futs.append(pool.submit(j.run))
        for j, f in zip(jobs, futs):
            if f is None:
                continue
            f.result()
            st = stats[j.case.id]
            st[1] += 1
            if j.problems and j.known and not any("PANIC" in p for p in j.problems):
                known.append(j)
                st[0] += 1
            elif j.problems:
                fails.append(j)
            else:
                st[0] += 1
            if getattr(j, "note", None):
                eithers.setdefault(j.case.id, []).append(f"{j.case.label} {j.dtype}: {j.note}")
    import shlex
    for j in fails:
        print(f"FAIL {j.case.id} [{j.case.label}] {j.dtype} expect={j.case.expect} ref="
              f"{'raises ' + j.ref if isinstance(j.ref, str) else ('ok' if j.ref else '-')}")
        for p in j.problems:
            print(f"     {p}")
        if j.cmd:
            print(f"     $ {shlex.join(j.cmd)}")
    for j in known:
        print(f"KNOWN {j.case.id} [{j.case.label}] float32 (inputs near the float32 limit): {j.problems[0][:160]}")
    if a.v:
        for id, notes in eithers.items():
            for n in notes:
                print(f"  note {id}: {n}")
    print()
    tp = tt = 0
    for id in ids:
        p, t = stats[id]
        tp += p
        tt += t
        print(f"{id:34s} {p:5d}/{t:<5d} {'ok' if p == t else 'FAIL'}")
    print(f"TOTAL {tp}/{tt} passed, {tt - tp} failed")
    if not a.keep and not fails:
        shutil.rmtree(work, ignore_errors=True)
    elif not a.keep:
        print(f"inputs kept under {work}")


if __name__ == "__main__":
    main()
