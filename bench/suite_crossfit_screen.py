#!/usr/bin/python3
"""The screens that chose training.cross_fit and its number of folds (docs/recipe.md): on the
suite, split seeds 0-2, ensembles trained within each split seed's training split only and
scored on its validation split, which none of them sees (the test split is not read).

Arms (--arms, comma-separated):
  A    a 5-seed ensemble on one hold-out: the training split dealt to 5 stratified inner
       folds (scikit-learn's StratifiedKFold, shuffled, random_state 100 + s); seeds 1-5
       train on the other four and validate on inner fold 0 (cross_fit false);
  B    cross-fitting spelled out, as it was first screened: 5 runs of one model, run i on
       seed i + 1 with inner fold i of the same dealing as its validation split;
  C<k> `flexmoe train`'s own cross-fitting with k seeds (1..k), over the training split
       alone (k folds dealt by flexmoe, data_loader/folds.h).
Each arm's members are averaged in probability (`flexmoe predict --calibrated`) over the
validation rows. Prints each arm's validation AUC per dataset and its differences to the
first arm per split seed.

  bench/suite_crossfit_screen.py [--arms A,B] [--out DIR] [--datasets a,b]
  (A and B: 1,894 s on 2 cores; C8 about 1.8 times B)
"""
import argparse
import concurrent.futures
import json
import os
import sys
import time

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import suite as S  # noqa: E402

SPLIT_SEEDS = [0, 1, 2]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arms", default="A,B")
    p.add_argument("--out", default="bench-out/crossfit-screen")
    p.add_argument("--suite", default="../shared/data/suite")
    p.add_argument("--datasets", default=",".join(S.DATASETS))
    p.add_argument("--flexmoe", default="build/flexmoe")
    return p.parse_args()


def runs_of(arm):
    """The runs (folder names) one arm trains per dataset and split seed."""
    return ["B%d" % m for m in range(5)] if arm == "B" else [arm + "0"]


def splits_of(args, name, s, labels, run):
    """The splits file of one run: the suite's validation split is always its test split."""
    with open(os.path.join(args.suite, name, "folds.json")) as f:
        sp = json.load(f)[s]
    train = np.array(sp["training"])
    if run.startswith("C"):
        return {"training": sorted(sp["training"]), "validation": [], "testing": sp["validation"]}
    y = np.array([labels[str(i)] for i in train])
    folds = list(StratifiedKFold(5, shuffle=True, random_state=100 + s).split(train, y))
    tr, va = folds[int(run[1:]) if run.startswith("B") else 0]
    return {"training": sorted(int(i) for i in train[tr]),
            "validation": sorted(int(i) for i in train[va]), "testing": sp["validation"]}


def overrides_of(run):
    if run.startswith("A"):
        return ["training.ensemble_size=5", "training.cross_fit=false"]
    if run.startswith("B"):
        return ["training.ensemble_size=1", "training.seed=%d" % (int(run[1:]) + 1)]
    return ["training.ensemble_size=%d" % int(run[1:-1]), "training.cross_fit=true"]


def train_run(args, name, s, config, csv_path, labels, run):
    folder = os.path.join(args.out, name, "s%d" % s, run)
    os.makedirs(folder, exist_ok=True)
    pred = os.path.join(folder, "predictions.csv")
    if os.path.exists(pred):
        return 0.0
    with open(os.path.join(folder, "splits.json"), "w") as f:
        json.dump(splits_of(args, name, s, labels, run), f)
    sets = ["data.splits_file=" + folder + "/splits.json", "data.prepared_dir=" + folder + "/prepared",
            "run.dir=" + folder + "/run", "metrics.tensorboard=false", "cluster.http_listen="]
    cmd = [args.flexmoe, "train", "--config", config, "--workers", "1", "--threads", "1"]
    for x in sets + overrides_of(run):
        cmd += ["--set", x]
    start = time.time()
    log = folder + "/train.log"
    S.run(cmd, log)
    S.run([args.flexmoe, "predict", "--checkpoint", folder + "/run", "--ensemble", "--input",
           csv_path, "--out", pred, "--calibrated"], log)
    return time.time() - start


def arm_auc(args, name, s, labels, arm):
    with open(os.path.join(args.suite, name, "folds.json")) as f:
        validation = [str(i) for i in json.load(f)[s]["validation"]]
    members = [S.read_predictions(os.path.join(args.out, name, "s%d" % s, run, "predictions.csv"), None)
               for run in runs_of(arm)]
    p = [np.mean([m[i] for m in members]) for i in validation]
    return roc_auc_score([labels[i] for i in validation], p)


def main():
    args = parse_args()
    arms = [a for a in args.arms.split(",") if a]
    names = [n for n in args.datasets.split(",") if n]
    with open(os.path.join(args.suite, "baselines_results.json")) as f:
        sizes = {n: b["n"] for n, b in json.load(f).items()}
    info = {}
    for n in names:
        config, csv_path, id_col = S.write_config(args, n)
        _, _, label_col, _ = S.dataset_source(args.suite, n)
        info[n] = (config, csv_path, S.read_labels(csv_path, id_col, label_col))
    jobs = [(n, s, run) for n in sorted(names, key=lambda n: -sizes[n]) for s in SPLIT_SEEDS
            for arm in arms for run in runs_of(arm)]
    start = time.time()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = {pool.submit(train_run, args, n, s, info[n][0], info[n][1], info[n][2], run):
                   (n, s, run) for n, s, run in jobs}
        for future in concurrent.futures.as_completed(futures):
            print("done", futures[future], "%.0f s" % future.result(), flush=True)
    print("wall %.0f s" % (time.time() - start))
    print("| dataset | " + " | ".join(arms) + " | " +
          " | ".join("%s - %s (per split seed)" % (a, arms[0]) for a in arms[1:]) + " |")
    means = {a: [] for a in arms}
    for n in names:
        auc = {a: [arm_auc(args, n, s, info[n][2], a) for s in SPLIT_SEEDS] for a in arms}
        for a in arms:
            means[a].append(np.mean(auc[a]))
        diffs = [" ".join("%+.3f" % (x - y) for x, y in zip(auc[a], auc[arms[0]])) for a in arms[1:]]
        print("| %s | %s | %s |" % (n, " | ".join("%.4f" % np.mean(auc[a]) for a in arms),
                                    " | ".join(diffs)))
    print("| mean | %s |" % " | ".join("%.4f" % np.mean(means[a]) for a in arms))


if __name__ == "__main__":
    main()
