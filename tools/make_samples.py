"""Writes the sample data of samples/ (used by `losskit demo`). Deterministic: rerunning
reproduces the same files. Needs only NumPy:

    ~/.cache/losskit-refenv/bin/python tools/make_samples.py   # any python with NumPy
"""
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "samples")
rng = np.random.default_rng(20261128)


def save(rel, arr):
    path = os.path.join(OUT, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, arr)


def softmax(z, axis=-1):
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


# classification: 8 samples, 5 classes
N, C = 8, 5
labels = rng.integers(0, C, N).astype(np.int64)
logits = rng.normal(0.0, 2.0, (N, C))
logits[np.arange(N), labels] += 1.5  # a classifier that is right more often than not
save("classification/logits.npy", logits.astype(np.float32))
save("classification/labels.npy", labels)
save("classification/log_probs.npy", np.log(softmax(logits)).astype(np.float32))
save("classification/onehot.npy", np.eye(C, dtype=np.float32)[labels])
save("classification/predicted_probs.npy", softmax(logits).astype(np.float32))
save("classification/target_probs.npy", softmax(rng.normal(0.0, 1.0, (N, C))).astype(np.float32))

# binary: 8 samples, 3 labels each
bl = rng.normal(0.0, 2.0, (N, 3))
by = (rng.random((N, 3)) < 0.5).astype(np.float32)
save("binary/logits.npy", bl.astype(np.float32))
save("binary/probs.npy", (1 / (1 + np.exp(-bl))).astype(np.float32))
save("binary/labels.npy", by)

# regression: 4 samples, 4 outputs each
targets = rng.normal(2.0, 1.0, (4, 4))
save("regression/targets.npy", targets.astype(np.float32))
save("regression/predictions.npy", (targets + rng.normal(0.0, 0.7, (4, 4))).astype(np.float32))
save("regression/counts.npy", rng.poisson(2.0, (4, 4)).astype(np.float32))
save("regression/rates.npy", rng.uniform(0.5, 3.0, (4, 4)).astype(np.float32))

# ranking pairs: 10 pairs and which one should rank higher
save("ranking/scores1.npy", rng.normal(0.0, 1.0, 10).astype(np.float32))
save("ranking/scores2.npy", rng.normal(0.0, 1.0, 10).astype(np.float32))
save("ranking/order.npy", np.where(rng.random(10) < 0.5, -1.0, 1.0).astype(np.float32))

# embeddings: 6 triplets of 4-dimensional embeddings
anchor = rng.normal(0.0, 1.0, (6, 4))
save("embeddings/anchor.npy", anchor.astype(np.float32))
save("embeddings/positive.npy", (anchor + rng.normal(0.0, 0.3, (6, 4))).astype(np.float32))
save("embeddings/negative.npy", rng.normal(0.0, 1.0, (6, 4)).astype(np.float32))
