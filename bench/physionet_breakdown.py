#!/usr/bin/env python3
"""Where flexmoe loses or wins against the baselines on a prepared real dataset.

    /usr/bin/python3 bench/physionet_breakdown.py --prepared data/physionet2012/prepared
        [--config configs/physionet2012.textproto --flexmoe-binary build/flexmoe]
        [--fractions 0.25,0.5,1] [--seeds 1,2] [--sections 1,2,3] [--out DIR] [--json OUT]

On flexmoe's split (bench/baselines.py reads it), with the baselines' hyperparameters chosen
on validation once, on the full training split:

1. feature groups: the test AUC of each baseline when one group of features is left out,
   by modality (vitals, arterial, ...) and by summary statistic (_first, _last, _lowest,
   _highest, _median; the rest are static), against all features;
2. the missing values: logistic regression with and without missing-value indicators, and
   gradient boosting on native missing values against mean-filled ones (what a mean fill
   inside an observed modality throws away);
3. learning curves: test AUC against the fraction of the training split used (a seeded
   stratified subset; validation and test unchanged), for both baselines and, with
   --config, for flexmoe (`flexmoe prepare` with a splits file, then `flexmoe train`, its
   test AUC read from metrics.jsonl, mean over --seeds).

The per-combination comparison is bench/baselines.py --flexmoe NAME=PRED.csv.
"""
import argparse
import json
import os
import re
import subprocess
import sys

import numpy as np
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import baselines  # noqa: E402  (bench/baselines.py: the split, the candidates, the metrics)

STATS = ("_first", "_last", "_lowest", "_highest", "_median")


def feature_names(summary):
    return [f for m in summary["modalities"] for f in m["features"]]


def groups(summary):
    """{group name: column indices}: one per modality, one per statistic, the static rest."""
    out, offset = {}, 0
    for m in summary["modalities"]:
        out["modality " + m["name"]] = list(range(offset, offset + len(m["features"])))
        offset += len(m["features"])
    names = feature_names(summary)
    for s in STATS:
        out["statistic " + s[1:]] = [i for i, n in enumerate(names) if n.endswith(s)]
    out["static (no statistic)"] = [i for i, n in enumerate(names)
                                    if not any(n.endswith(s) for s in STATS)]
    return out


def test_auc(model, data, columns=None, fill=False, rows=None):
    """Fits a fresh copy on training (optionally a row subset / column subset) and scores
    the test split."""
    _, x_tr, y_tr, _ = data["training"]
    _, x_te, y_te, _ = data["testing"]
    if rows is not None:
        x_tr, y_tr = x_tr[rows], y_tr[rows]
    if columns is not None:
        x_tr, x_te = x_tr[:, columns], x_te[:, columns]
    if fill:  # mean fill fitted on training, as a mean-imputing model would see the data
        imputer = SimpleImputer(strategy="mean", keep_empty_features=True).fit(x_tr)
        x_tr, x_te = imputer.transform(x_tr), imputer.transform(x_te)
    m = clone(model).fit(x_tr, y_tr)
    return baselines.metrics(y_te, m.predict_proba(x_te))["auc"]


def stratified_subset(y, fraction, seed):
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        keep.extend(idx[:max(1, int(round(fraction * len(idx))))].tolist())
    return np.array(sorted(keep))


def flexmoe_curve_point(args, data, rows, fraction, seed):
    """flexmoe's test AUC with the training split cut to `rows` (prepare + train)."""
    root = os.path.join(args.out, f"fraction-{fraction:g}")
    os.makedirs(root, exist_ok=True)
    ids = data["training"][0]
    splits = {"training": [ids[i] for i in rows], "validation": data["validation"][0],
              "testing": data["testing"][0]}
    with open(os.path.join(root, "splits.json"), "w", encoding="utf-8") as f:
        json.dump(splits, f)
    sets = ["--set", f"data.splits_file={root}/splits.json",
            "--set", f"data.prepared_dir={root}/prepared"]
    subprocess.run([args.flexmoe_binary, "prepare", "--config", args.config] + sets,
                   check=True, stdout=subprocess.DEVNULL)
    run = os.path.join(root, f"seed-{seed}")
    subprocess.run([args.flexmoe_binary, "train", "--config", args.config] + sets +
                   ["--set", f"run.dir={run}", "--set", f"training.seed={seed}",
                    "--set", "training.seeds=", "--workers", "2"],
                   check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(run, "metrics.jsonl"), encoding="utf-8") as f:
        tests = [json.loads(l) for l in f if '"event":"test"' in l]
    return tests[-1]["test"]["auc"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prepared", required=True)
    parser.add_argument("--config", help="also draw flexmoe's learning curve with this config")
    parser.add_argument("--flexmoe-binary", default="build/flexmoe")
    parser.add_argument("--fractions", default="0.25,0.5,1")
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--out", default="bench-out/breakdown")
    parser.add_argument("--sections", default="1,2,3", help="which of the three analyses")
    parser.add_argument("--json")
    args = parser.parse_args()
    sections = {int(x) for x in args.sections.split(",")}
    summary, data = baselines.load(args.prepared)
    chosen = {}
    for name, candidates in (("logreg", baselines.logreg_candidates()),
                             ("hgb", baselines.hgb_candidates())):
        (label, model), _ = baselines.choose(candidates, data)
        chosen[name] = model
        print(f"{name}: {label} (chosen on validation)")
    results = {"feature_groups": {}, "missing_values": {}, "learning_curve": {}}
    print(flush=True)

    full = {n: test_auc(m, data) for n, m in chosen.items()}
    if 1 in sections:
        feature_group_section(summary, data, chosen, full, results)
    if 2 in sections:
        missing_value_section(data, chosen, full, results)
    if 3 in sections:
        learning_curve_section(args, data, chosen, results)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    return 0


def feature_group_section(summary, data, chosen, full, results):
    print("\n1. test AUC (%) with one feature group left out")
    print(f"{'group':32s} {'features':>8s} {'logreg':>8s} {'hgb':>8s}")
    print(f"{'(all features)':32s} {len(feature_names(summary)):8d} "
          f"{100 * full['logreg']:8.2f} {100 * full['hgb']:8.2f}")
    n_features = len(feature_names(summary))
    for g, cols in groups(summary).items():
        rest = [i for i in range(n_features) if i not in set(cols)]
        aucs = {n: test_auc(m, data, columns=rest) for n, m in chosen.items()}
        results["feature_groups"][g] = {"features": len(cols), **aucs}
        print(f"{'- ' + g:32s} {len(cols):8d} {100 * aucs['logreg']:8.2f} {100 * aucs['hgb']:8.2f}")


def missing_value_section(data, chosen, full, results):
    print("\n2. missing values: test AUC (%)")
    c = chosen["logreg"].named_steps["logisticregression"].C
    no_indicator = make_pipeline(SimpleImputer(strategy="mean", add_indicator=False),
                                 StandardScaler(), LogisticRegression(C=c, max_iter=5000))
    mv = {"logreg, mean fill + indicators": full["logreg"],
          "logreg, mean fill only": test_auc(no_indicator, data),
          "hgb, native missing values": full["hgb"],
          "hgb, mean-filled input": test_auc(chosen["hgb"], data, fill=True)}
    for k, v in mv.items():
        print(f"{k:40s} {100 * v:8.2f}")
    results["missing_values"] = mv


def learning_curve_section(args, data, chosen, results):
    print("\n3. learning curve: test AUC (%) against the training fraction")
    fractions = [float(f) for f in args.fractions.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    y_tr = data["training"][2]
    header = f"{'fraction':>8s} {'samples':>8s} {'logreg':>8s} {'hgb':>8s}"
    print(header + (f" {'flexmoe':>8s}" if args.config else ""))
    for fraction in fractions:
        rows = stratified_subset(y_tr, fraction, 2012)
        point = {"samples": int(len(rows))}
        for n, m in chosen.items():
            point[n] = test_auc(m, data, rows=rows)
        if args.config:
            point["flexmoe"] = float(np.mean([flexmoe_curve_point(args, data, rows, fraction, s)
                                              for s in seeds]))
        results["learning_curve"][f"{fraction:g}"] = point
        line = f"{fraction:8g} {len(rows):8d} {100 * point['logreg']:8.2f} {100 * point['hgb']:8.2f}"
        print(line + (f" {100 * point['flexmoe']:8.2f}" if args.config else ""), flush=True)


if __name__ == "__main__":
    sys.exit(main())
