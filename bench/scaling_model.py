#!/usr/bin/env python3
"""The cost model of docs/scaling.md, fitted to launch/scaling.sh's CSV, and its predictions.

Per worker and step (W workers, global batch B, M modalities, P patches, width D, E experts,
top-k k, one sparse fusion layer as in the swept configs), T = B*M*P/W tokens:

  FLOPs     = 3 * (attention 8*T*D^2 + 4*T*(M*P)*D  +  experts 8*T*k*D^2  +  encoders
              2*(B/W)*M*F*P*D)                      (forward + backward = 3x forward)
  a2a bytes = 4 exchanges (dispatch, combine, and their gradients) * T*k*D*4 * (W-1)/W
  ar bytes  = 2*(W-1)/W * 4*N_rep                   (ring all-reduce of the replicated grads)
  step      = FLOPs / R  +  n_a2a*(W-1)*alpha_peer + a2a_bytes/beta
                         +  n_coll*alpha*ceil(log2 W) + ar_bytes/beta

R (FLOP/s), alpha (per collective round), alpha_peer (per peer of an all-to-all) and beta
(bytes/s) are fitted by least squares to the measured compute, exchange and reduce times
(non-oversubscribed points for the links). The predictions for 8..512 GPUs put in a GPU's
FLOP rate and the link figures written in LINKS below instead, for a weak-scaling workload
(fixed tokens per GPU). Usage:

  bench/scaling_model.py SCALING_CSV [--features F] [--markdown]
"""
import argparse
import csv
import math

import numpy as np

N_A2A = 4      # token all-to-alls per sparse layer and step (forward 2, backward 2)
N_COLL = 3     # other collectives per step: counts, router statistics, gradient buckets (the
               # loss sums ride in them since af4ec4f; docs/scaling.md was fitted with 6)


def replicated_params(m, p, d, features):
    """Replicated parameters of the swept model: encoders, position embedding, bank,
    attention and norms, router, head (the experts are sharded)."""
    combos = 2 ** m - 1
    enc = m * (features * p * d + p * d)
    attn = 4 * d * d + 4 * d
    return enc + m * p * d + combos * m * p * d + attn + 4 * d + d * 16 + m * d * 3


def flops(w, e, m, d, batch, p, k, features):
    t = batch * m * p / w
    attention = 8 * t * d * d + 4 * t * (m * p) * d
    experts = 8 * t * k * d * d
    encoders = 2 * (batch / w) * m * features * p * d
    return 3 * (attention + experts + encoders)


def fit(rows, features):
    """Least squares: compute_s = F / R; exchange_s, reduce_s = latency + bytes / beta."""
    f = np.array([flops(r["w"], r["e"], r["m"], r["d"], r["batch"], r["p"], 4, features)
                  for r in rows])
    compute = np.array([r["compute_ms"] / 1e3 for r in rows])
    # compute_s = F / R + c0 (c0: the step's fixed host work: launches, bookkeeping)
    inv_r, c0 = (float(c) for c in np.linalg.lstsq(np.stack([f, np.ones_like(f)], 1), compute,
                                                   rcond=None)[0])
    links = [r for r in rows if r["w"] > 1 and not r["oversubscribed"]]
    if not links:
        links = [r for r in rows if r["w"] > 1]
    a, b = [], []
    for r in links:
        t = r["batch"] * r["m"] * r["p"] / r["w"]
        share = (r["w"] - 1) / r["w"]
        a2a_bytes = N_A2A * t * 4 * r["d"] * 4 * share
        ar_bytes = 2 * share * 4 * replicated_params(r["m"], r["p"], r["d"], features)
        rounds = math.ceil(math.log2(r["w"]))
        # exchange_s = n_a2a*(W-1)*alpha_peer + a2a_bytes/beta ; reduce_s = n*alpha*rounds + ar/beta
        a.append([N_A2A * (r["w"] - 1), 0.0, a2a_bytes])
        b.append(r["exchange_ms"] / 1e3)
        a.append([0.0, N_COLL * rounds, ar_bytes])
        b.append(r["reduce_ms"] / 1e3)
    coef = np.linalg.lstsq(np.array(a), np.array(b), rcond=None)[0]
    alpha_peer, alpha, inv_beta = (max(float(c), 1e-12) for c in coef)
    return {"R": 1 / inv_r, "c0": max(c0, 0.0), "alpha_peer": alpha_peer, "alpha": alpha,
            "beta": 1 / inv_beta}


# Link and device figures the predictions assume (see docs/scaling.md).
GPU_FLOPS = 0.5 * 67e12          # H100 SXM fp32 (TF32 off) peak 67 TFLOP/s, at 50%
LINKS = {
    # per GPU, one direction: NVLink 4 (H100 SXM) 450 GB/s; NCCL small-message latency
    "NVLink": {"beta": 450e9, "alpha": 8e-6, "alpha_peer": 1e-6},
    # NDR InfiniBand, one 400 Gb/s HCA per GPU (50 GB/s); across nodes
    "InfiniBand": {"beta": 50e9, "alpha": 20e-6, "alpha_peer": 3e-6},
}


def predict(gpus, link, tokens=65536, d=512, e=16, k=4, m=4, p=16, features=256, c0=1e-3):
    """Step time split for `gpus` GPUs, weak scaling: `tokens` per GPU, E experts spread over
    min(gpus, E) ranks (expert-parallel groups of E ranks at most; beyond, the experts are
    replicated over gpus/E groups and their gradients all-reduced over the replicas)."""
    l = LINKS[link]
    batch = tokens * gpus / (m * p)
    f = flops(gpus, e, m, d, batch, p, k, features)
    compute = f / GPU_FLOPS + c0
    ep = min(gpus, e)
    a2a_bytes = N_A2A * tokens * k * d * 4 * (ep - 1) / ep
    exchange = N_A2A * (l["alpha"] + (ep - 1) * l["alpha_peer"]) + a2a_bytes / l["beta"]
    rep = replicated_params(m, p, d, features)
    rounds = math.ceil(math.log2(gpus)) if gpus > 1 else 0
    reduce = N_COLL * l["alpha"] * rounds + 2 * (gpus - 1) / gpus * 4 * rep / l["beta"]
    replicas = gpus // ep
    if replicas > 1:
        expert_params = (e // ep) * (4 * d * d + 3 * d)
        reduce += 2 * (replicas - 1) / replicas * 4 * expert_params / l["beta"]
        reduce += 2 * l["alpha"] * math.ceil(math.log2(replicas))
    step = compute + exchange + reduce
    return step, compute, exchange, reduce


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--features", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--patches", type=int, default=4)
    args = ap.parse_args()
    rows = []
    for r in csv.DictReader(open(args.csv)):
        rows.append({"w": int(r["workers"]), "e": int(r["experts"]), "m": int(r["modalities"]),
                     "d": int(r["width"]), "batch": args.batch, "p": args.patches,
                     "compute_ms": float(r["compute_ms"]), "exchange_ms": float(r["exchange_ms"]),
                     "reduce_ms": float(r["reduce_ms"]), "step_ms": float(r["step_ms"]),
                     "oversubscribed": r["oversubscribed"] == "yes"})
    fitted = fit(rows, args.features)
    print("Fitted on %s (%d points):" % (args.csv, len(rows)))
    print("  R = %.2f GFLOP/s per worker, c0 = %.2f ms per step; alpha = %.1f us per collective "
          "round; alpha_peer = %.1f us per all-to-all peer; beta = %.2f GB/s"
          % (fitted["R"] / 1e9, fitted["c0"] * 1e3, fitted["alpha"] * 1e6,
             fitted["alpha_peer"] * 1e6, fitted["beta"] / 1e9))
    print("\n| workers | experts | modalities | width | measured step ms | model step ms |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        t = r["batch"] * r["m"] * r["p"] / r["w"]
        share = (r["w"] - 1) / r["w"]
        model = flops(r["w"], r["e"], r["m"], r["d"], r["batch"], r["p"], 4,
                      args.features) / fitted["R"] + fitted["c0"]
        if r["w"] > 1:
            model += N_A2A * (r["w"] - 1) * fitted["alpha_peer"]
            model += N_A2A * t * 4 * r["d"] * 4 * share / fitted["beta"]
            model += N_COLL * fitted["alpha"] * math.ceil(math.log2(r["w"]))
            model += 2 * share * 4 * replicated_params(r["m"], r["p"], r["d"], args.features) / fitted["beta"]
        print("| %d%s | %d | %d | %d | %.2f | %.2f |" % (
            r["w"], " (oversubscribed)" if r["oversubscribed"] else "", r["e"], r["m"], r["d"],
            r["step_ms"], model * 1e3))
    print("\nPredictions, weak scaling: 65,536 tokens per GPU, D 512, E 16, top-4, M 4, P 16;")
    print("GPU %.1f TFLOP/s fp32; links as in LINKS (docs/scaling.md).\n" % (GPU_FLOPS / 1e12))
    print("| GPUs | link | step ms | compute | exchange | reduce | efficiency vs 1 GPU |")
    print("|---|---|---|---|---|---|---|")
    for link in LINKS:
        one = predict(1, link)[0]
        for g in (8, 16, 32, 64, 128, 256, 512):
            step, c, x, rd = predict(g, link)
            print("| %d | %s | %.2f | %.2f | %.2f | %.2f | %.0f%% |" % (
                g, link, step * 1e3, c * 1e3, x * 1e3, rd * 1e3, 100 * one / step))
    print("\nStrong scaling: a global batch of 1,048,576 tokens (same model), 1 ms fixed host")
    print("work per step.\n")
    print("| GPUs | link | tokens per GPU | step ms | compute | exchange | reduce | speed-up vs 8 |")
    print("|---|---|---|---|---|---|---|---|")
    for link in LINKS:
        base = predict(8, link, tokens=1048576 // 8)[0]
        for g in (8, 16, 32, 64, 128, 256, 512):
            step, c, x, rd = predict(g, link, tokens=1048576 // g)
            print("| %d | %s | %d | %.2f | %.2f | %.2f | %.2f | %.1fx |" % (
                g, link, 1048576 // g, step * 1e3, c * 1e3, x * 1e3, rd * 1e3, base / step))


if __name__ == "__main__":
    main()
