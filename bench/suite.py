#!/usr/bin/python3
"""The missing-modality suite as a benchmark (bench/suite.sh runs it).

For every suite dataset (../shared/data/suite by default) and split seed: a config written
by `flexmoe init` from the dataset's modalities.json, `flexmoe train` on that seed's splits
(folds.json) with the default recipe plus any --set overrides, then `flexmoe predict
--calibrated` of the run directory (the shipped predictor: the ensemble of its seeds) on
the dataset's CSV. The test rows' probabilities are written to
OUT/<dataset>/seed-<s>/test_predictions.csv (id,p) and scored here beside the baselines of
the same split seeds (the suite's baselines_results.json). Nothing here looks at a test
split to choose anything: training chooses by validation only.

The table: per dataset, flexmoe's test AUC (the ensemble, and the mean of its single
models), the better baseline by mean AUC (LR or HGB) on the same seeds, the paired
difference (mean over seeds, its standard error, seeds ahead), the calibrated log-loss
beside the better baseline log-loss, the mean predicted probability beside the training
prevalence, and the wall time. The last line is one JSON object with the suite figures.
"""
import argparse
import concurrent.futures
import csv
import gzip
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

DATASETS = ["physionet2012_a", "als_proact", "flchain", "pima2", "pbc", "horse_colic"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="bench-out/suite")
    p.add_argument("--suite", default="../shared/data/suite")
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--split-seeds", default="0,1,2,3,4")
    p.add_argument("--set", action="append", default=[], dest="overrides",
                   help="a config override for every run (flexmoe --set PATH=VALUE)")
    p.add_argument("--parallel", type=int, default=2, help="trainings at once (one thread each)")
    p.add_argument("--flexmoe", default="build/flexmoe")
    p.add_argument("--reuse", action="store_true",
                   help="keep finished runs of OUT (same overrides) instead of training again")
    return p.parse_args()


def dataset_source(suite, name):
    """The CSV, id and label columns, and excluded columns of a suite dataset."""
    folder = os.path.join(suite, name)
    source = os.path.join(folder, "source.json")
    if os.path.exists(source):
        with open(source) as f:
            s = json.load(f)
        return (os.path.normpath(os.path.join(suite, s["data"])), s["id"], s["label"],
                s.get("drop", []))
    return os.path.join(folder, "data.csv.gz"), "id", "label", []


def run(cmd, log):
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        sys.exit("suite: failed (%d): %s; see %s" % (r.returncode, " ".join(cmd), log))


def write_config(args, name):
    csv_path, id_col, label_col, drop = dataset_source(args.suite, name)
    folder = os.path.join(args.out, name)
    os.makedirs(folder, exist_ok=True)
    config = os.path.join(folder, "config.textproto")
    cmd = [args.flexmoe, "init", "--input", csv_path, "--out", config, "--force",
           "--modalities", os.path.join(args.suite, name, "modalities.json"),
           "--id", id_col, "--label", label_col]
    if drop:
        cmd += ["--exclude"] + drop
    run(cmd, os.path.join(folder, "init.log"))
    return config, csv_path, id_col


def train_and_predict(args, name, seed, config, csv_path):
    """Trains split seed `seed` and predicts every row; returns its folder."""
    folder = os.path.join(args.out, name, "seed-%d" % seed)
    os.makedirs(folder, exist_ok=True)
    predictions = os.path.join(folder, "predictions.csv")
    stamp = os.path.join(folder, "overrides.json")
    if args.reuse and os.path.exists(predictions) and os.path.exists(stamp):
        with open(stamp) as f:
            if json.load(f) == args.overrides:
                return folder, 0.0
    with open(os.path.join(args.suite, name, "folds.json")) as f:
        splits = json.load(f)[seed]
    with open(os.path.join(folder, "splits.json"), "w") as f:
        json.dump(splits, f)
    run_dir = os.path.join(folder, "run")
    subprocess.run(["rm", "-rf", run_dir, predictions])
    log = os.path.join(folder, "train.log")
    if os.path.exists(log):
        os.remove(log)
    start = time.time()
    sets = ["data.splits_file=" + os.path.join(folder, "splits.json"),
            "data.prepared_dir=" + os.path.join(folder, "prepared"), "run.dir=" + run_dir,
            "metrics.tensorboard=false", "cluster.http_listen="] + args.overrides
    cmd = [args.flexmoe, "train", "--config", config, "--workers", "1", "--threads", "1"]
    for s in sets:
        cmd += ["--set", s]
    run(cmd, log)
    run([args.flexmoe, "predict", "--checkpoint", run_dir, "--ensemble", "--input", csv_path,
         "--out", predictions, "--calibrated"], log)
    seconds = time.time() - start
    with open(stamp, "w") as f:
        json.dump(args.overrides, f)
    return folder, seconds


def read_predictions(path, id_col):
    """id -> probability of class 1 (predict's CSV: id, then one column per class)."""
    out = {}
    with open(path) as f:
        reader = csv.reader(f)
        header = next(reader)
        column = len(header) - 1 if len(header) == 3 else header.index("1")
        for row in reader:
            out[row[0]] = float(row[column])
    return out


def read_labels(csv_path, id_col, label_col):
    opener = gzip.open if csv_path.endswith(".gz") else open
    with opener(csv_path, "rt") as f:
        reader = csv.DictReader(f)
        return {row[id_col].strip(): int(float(row[label_col])) for row in reader}


def single_records(run_dir):
    """Each seed's "test" record (validation and test scores of its best epoch)."""
    records = []
    for root, _, files in os.walk(run_dir):
        if "metrics.jsonl" not in files:
            continue
        with open(os.path.join(root, "metrics.jsonl")) as f:
            for line in f:
                r = json.loads(line)
                if r.get("event") == "test":
                    records.append(r)
    return records


def single_models(run_dir):
    """Each seed's test AUC and log-loss (prior-corrected, uncalibrated)."""
    records = single_records(run_dir)
    return ([r["test"]["auc"] for r in records],
            [r["test"].get("log_loss", float("nan")) for r in records])


def score_seed(args, name, seed, folder, labels):
    with open(os.path.join(args.suite, name, "folds.json")) as f:
        splits = json.load(f)[seed]
    probs = read_predictions(os.path.join(folder, "predictions.csv"), None)
    test = [str(i) for i in splits["testing"]]
    y = np.array([labels[i] for i in test])
    p = np.array([probs[i] for i in test])
    with open(os.path.join(folder, "test_predictions.csv"), "w") as f:
        f.write("id,p\n")
        for i, v in zip(test, p):
            f.write("%s,%.9g\n" % (i, v))
    train_y = np.array([labels[str(i)] for i in splits["training"]])
    single_auc, single_ll = single_models(os.path.join(folder, "run"))
    ensemble = os.path.join(folder, "run", "ensemble.json")
    cross_fit = False
    if os.path.exists(ensemble):
        with open(ensemble) as f:
            record = json.load(f)
        validation, cross_fit = record["validation"], record.get("cross_fit", False)
    else:  # one seed: its own record
        validation = single_records(os.path.join(folder, "run"))[0]["validation"]
    return {"auc": roc_auc_score(y, p), "log_loss": log_loss(y, np.clip(p, 1e-15, 1 - 1e-15)),
            "val_auc": validation["auc"], "val_log_loss": validation.get("log_loss", float("nan")),
            "cross_fit": cross_fit,
            "mean_p": float(p.mean()), "prevalence": float(train_y.mean()),
            "single_auc": float(np.mean(single_auc)) if single_auc else float("nan"),
            "single_log_loss": float(np.mean(single_ll)) if single_ll else float("nan")}


def mean_se(values):
    v = np.array(values, dtype=float)
    se = v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else float("nan")
    return float(v.mean()), float(se)


def main():
    args = parse_args()
    names = [n for n in args.datasets.split(",") if n]
    seeds = [int(s) for s in args.split_seeds.split(",") if s]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.suite, "baselines_results.json")) as f:
        baselines = json.load(f)
    start = time.time()
    configs = {n: write_config(args, n) for n in names}
    # Largest datasets first, so that the pool ends together.
    order = sorted(((n, s) for n in names for s in seeds), key=lambda j: -baselines[j[0]]["n"])
    folders, seconds = {}, {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.parallel) as pool:
        futures = {pool.submit(train_and_predict, args, n, s, configs[n][0], configs[n][1]): (n, s)
                   for n, s in order}
        for future in concurrent.futures.as_completed(futures):
            n, s = futures[future]
            folders[(n, s)], seconds[(n, s)] = future.result()
            print("done %s split seed %d (%.0f s)" % (n, s, seconds[(n, s)]), flush=True)
    wall = time.time() - start

    rows, summary = [], {"datasets": {}}
    for n in names:
        csv_path, id_col, label_col, _ = dataset_source(args.suite, n)
        labels = read_labels(csv_path, id_col, label_col)
        scores = [score_seed(args, n, s, folders[(n, s)], labels) for s in seeds]
        runs = baselines[n]["runs"]
        lr = [runs["lr"][s] for s in seeds]
        hgb = [runs["hgb"][s] for s in seeds]
        lr_auc = np.mean([r["test_auc"] for r in lr])
        hgb_auc = np.mean([r["test_auc"] for r in hgb])
        better, better_runs = ("LR", lr) if lr_auc >= hgb_auc else ("HGB", hgb)
        diff = [sc["auc"] - b["test_auc"] for sc, b in zip(scores, better_runs)]
        d_mean, d_se = mean_se(diff)
        ll_base = min(np.mean([r["test_ll"] for r in lr]), np.mean([r["test_ll"] for r in hgb]))
        d = {"auc": float(np.mean([s["auc"] for s in scores])),
             "val_auc": float(np.mean([s["val_auc"] for s in scores])),
             "val_log_loss": float(np.mean([s["val_log_loss"] for s in scores])),
             "single_auc": float(np.mean([s["single_auc"] for s in scores])),
             "single_log_loss": float(np.mean([s["single_log_loss"] for s in scores])),
             "lr_auc": float(lr_auc), "hgb_auc": float(hgb_auc),
             "better": better, "better_auc": float(max(lr_auc, hgb_auc)),
             "diff": d_mean, "diff_se": d_se, "ahead": int(sum(x > 0 for x in diff)),
             "log_loss": float(np.mean([s["log_loss"] for s in scores])),
             "baseline_log_loss": float(ll_base),
             "mean_p": float(np.mean([s["mean_p"] for s in scores])),
             "prevalence": float(np.mean([s["prevalence"] for s in scores])),
             "max_prevalence_gap": float(max(abs(s["mean_p"] - s["prevalence"]) for s in scores)),
             "seconds": float(sum(seconds[(n, s)] for s in seeds))}
        summary["datasets"][n] = d
        summary["cross_fit"] = summary.get("cross_fit", False) or any(s["cross_fit"] for s in scores)
        rows.append(n)

    print("\nsuite: split seeds %s, overrides %s\n" % (args.split_seeds, args.overrides or "none"))
    validation = "validation AUC (out of fold)" if summary.get("cross_fit") else "validation AUC"
    print("| dataset | " + validation + " | flexmoe AUC (single models) | LR / HGB AUC | paired "
          "difference to the better (SE, seeds ahead) | log-loss flexmoe (single) / best "
          "baseline | mean p / prevalence (worst seed's gap) | train+predict s |")
    print("|---|---|---|---|---|---|---|---|")
    for n in rows:
        d = summary["datasets"][n]
        print("| %s | %.3f | %.3f (%.3f) | %.3f / %.3f | %+.3f (%.3f, %d of %d) | %.3f (%.3f) / %.3f "
              "| %.3f / %.3f (%.3f) | %.0f |"
              % (n, d["val_auc"], d["auc"], d["single_auc"], d["lr_auc"], d["hgb_auc"], d["diff"],
                 d["diff_se"], d["ahead"], len(seeds), d["log_loss"], d["single_log_loss"],
                 d["baseline_log_loss"], d["mean_p"], d["prevalence"], d["max_prevalence_gap"],
                 d["seconds"]))
    ds = summary["datasets"].values()
    summary.update({
        "mean_auc": float(np.mean([d["auc"] for d in ds])),
        "mean_val_auc": float(np.mean([d["val_auc"] for d in ds])),
        "mean_better_auc": float(np.mean([d["better_auc"] for d in ds])),
        "mean_diff": float(np.mean([d["diff"] for d in ds])),
        "worst_diff": float(min(d["diff"] for d in ds)),
        "log_loss_at_or_below": int(sum(d["log_loss"] <= d["baseline_log_loss"] for d in ds)),
        "wall_s": wall, "split_seeds": seeds, "overrides": args.overrides})
    print("| **mean** | %.3f | **%.3f** | better %.3f | **%+.3f** (worst %+.3f) | at or below on %d of %d | | wall %.0f s |"
          % (summary["mean_val_auc"], summary["mean_auc"], summary["mean_better_auc"], summary["mean_diff"],
             summary["worst_diff"], summary["log_loss_at_or_below"], len(rows), wall))
    with open(os.path.join(args.out, "suite.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps({k: summary[k] for k in ("mean_val_auc", "mean_auc", "mean_better_auc", "mean_diff",
                                              "worst_diff", "log_loss_at_or_below", "wall_s",
                                              "cross_fit")}))


if __name__ == "__main__":
    main()
