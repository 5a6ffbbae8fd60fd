#!/usr/bin/env python3
"""Baselines on flexmoe's own split, with scikit-learn (Debian's python3-sklearn).

- logreg: logistic regression on the features mean-imputed with missing-value indicators
  (SimpleImputer(add_indicator=True)), then standardised; C chosen on the validation split.
- hgb: HistGradientBoostingClassifier on the raw features (native missing values);
  learning rate and leaf count chosen on the validation split.

    /usr/bin/python3 bench/baselines.py --prepared data/physionet2012/prepared
        [--json OUT] [--flexmoe NAME=PRED.csv]...
        [--check-eval RUN/eval/test.json --check-predictions PRED.csv]

It reads the prepared dataset's summary.json (the source, its layout, the id and label
columns, the missing-value tokens, every modality's features in training order) and
splits.json (the ids of each split, as flexmoe prepared them), then the source itself: the
baselines see the raw values, not flexmoe's filled and scaled ones. Run it from the
directory flexmoe prepare ran in (the source path is relative to it). Choices are made on
the validation split only; the test split is scored once. Metrics: scikit-learn's
roc_auc_score, accuracy_score and f1_score(average="macro"), overall and per modality
combination. --flexmoe NAME=PRED.csv scores a `flexmoe predict` output (one model or an
ensemble) on the same test rows, in the same table. --check-eval/--check-predictions score
flexmoe's own test predictions with the same scikit-learn calls and compare them with
`flexmoe eval`'s figures.
"""
import argparse
import csv
import gzip
import io
import json
import os
import sys

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

SPLITS = ("training", "validation", "testing")


def _open_text(path):
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _value(text, missing):
    text = text.strip()
    if text == "" or text in missing:
        return np.nan
    return float(text)


def read_rows(summary):
    """{id: (label text, [values in training feature order])} from the source."""
    missing = set(summary.get("missing_values", []))
    features = [f for m in summary["modalities"] for f in m["features"]]
    rows = {}
    if summary["layout"] == "WIDE_CSV":
        with _open_text(summary["source"]) as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader)]
            at = {h: i for i, h in enumerate(header)}
            id_col, label_col = at[summary["id_column"]], at[summary["label_column"]]
            cols = [at[name] for name in features]
            for line in reader:
                if not line or (len(line) == 1 and not line[0].strip()):
                    continue
                rows[line[id_col].strip()] = (line[label_col].strip(),
                                              [_value(line[c], missing) for c in cols])
        return rows
    # Layout A: labels.csv and one CSV per modality.
    with _open_text(os.path.join(summary["source"], "labels.csv")) as f:
        reader = csv.reader(f)
        next(reader)
        for line in reader:
            if line and line[0].strip():
                rows[line[0].strip()] = (line[1].strip(), [np.nan] * len(features))
    offset = 0
    for m in summary["modalities"]:
        with _open_text(os.path.join(summary["source"], m["file"])) as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader)]
            at = {h: i for i, h in enumerate(header)}
            cols = [at[name] for name in m["features"]]
            for line in reader:
                if not line or not line[0].strip():
                    continue
                values = rows[line[0].strip()][1]
                for j, c in enumerate(cols):
                    values[offset + j] = _value(line[c], missing)
        offset += len(m["features"])
    return rows


def load(prepared):
    with open(os.path.join(prepared, "summary.json"), encoding="utf-8") as f:
        summary = json.load(f)
    with open(os.path.join(prepared, "splits.json"), encoding="utf-8") as f:
        splits = json.load(f)
    rows = read_rows(summary)
    classes = summary["class_names"]
    sizes = [len(m["features"]) for m in summary["modalities"]]
    names = [m["name"] for m in summary["modalities"]]
    data = {}
    for split in SPLITS:
        ids = splits[split]
        x = np.array([rows[i][1] for i in ids], dtype=np.float64)
        y = np.array([_label(rows[i][0], classes) for i in ids])
        data[split] = (ids, x, y, [_combination(v, sizes, names) for v in x])
    return summary, data


def _label(text, classes):
    if text in classes:
        return classes.index(text)
    return int(float(text))


def _combination(values, sizes, names):
    """flexmoe's rule: a modality is observed when any of its features holds a value."""
    observed, offset = [], 0
    for size, name in zip(sizes, names):
        if not np.all(np.isnan(values[offset:offset + size])):
            observed.append(name)
        offset += size
    return "+".join(observed)


def metrics(y, p):
    """The metrics flexmoe reports, by scikit-learn: AUC of class 1 (binary) or macro OvR."""
    out = {"count": int(len(y)), "accuracy": float(accuracy_score(y, p.argmax(1))),
           "macro_f1": float(f1_score(y, p.argmax(1), average="macro"))}
    try:
        if p.shape[1] == 2:
            out["auc"] = float(roc_auc_score(y, p[:, 1]))
        else:
            out["auc"] = float(roc_auc_score(y, p, multi_class="ovr", average="macro",
                                             labels=list(range(p.shape[1]))))
    except ValueError:
        out["auc"] = None  # one class only
    return out


def score(name, model, data):
    _, x_te, y_te, comb = data["testing"]
    p = model.predict_proba(x_te)
    result = {"model": name, "overall": metrics(y_te, p), "per_combination": {}}
    for c in sorted(set(comb), key=lambda s: (-s.count("+"), s)):
        rows = [i for i, v in enumerate(comb) if v == c]
        result["per_combination"][c] = metrics(y_te[rows], p[rows])
    return result


def choose(candidates, data):
    """The candidate with the highest validation AUC (first on ties), refitted as it is."""
    _, x_tr, y_tr, _ = data["training"]
    _, x_va, y_va, _ = data["validation"]
    best, best_auc, tried = None, -1.0, []
    for label, model in candidates:
        model.fit(x_tr, y_tr)
        auc = metrics(y_va, model.predict_proba(x_va))["auc"] or 0.0
        tried.append({"params": label, "validation_auc": auc})
        if auc > best_auc:
            best, best_auc = (label, model), auc
    return best, tried


def logreg_candidates():
    for c in (0.01, 0.03, 0.1, 0.3, 1.0, 3.0):
        yield (f"C={c}", make_pipeline(SimpleImputer(strategy="mean", add_indicator=True),
                                       StandardScaler(),
                                       LogisticRegression(C=c, max_iter=5000)))


def hgb_candidates():
    for lr in (0.03, 0.1):
        for leaves in (7, 15, 31):
            yield (f"learning_rate={lr},max_leaf_nodes={leaves}",
                   HistGradientBoostingClassifier(learning_rate=lr, max_leaf_nodes=leaves,
                                                  max_iter=300, l2_regularization=1.0,
                                                  early_stopping=False, random_state=0))


class Predictions:
    """A `flexmoe predict` CSV as a model with predict_proba over the test rows."""

    def __init__(self, path, classes, ids):
        probs = {}
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            cols = [header.index(c) for c in classes]
            for line in reader:
                probs[line[0]] = [float(line[c]) for c in cols]
        self.p = np.array([probs[i] for i in ids])

    def predict_proba(self, _):
        return self.p


def check_flexmoe(eval_path, predictions_path, data, classes):
    """flexmoe's test predictions scored by scikit-learn against flexmoe eval's figures."""
    with open(eval_path, encoding="utf-8") as f:
        ev = json.load(f)
    ids, _, y, _ = data["testing"]
    p = Predictions(predictions_path, classes, ids).p
    ours = metrics(y, p)
    theirs = ev["overall"]
    print(f"check: flexmoe's test predictions by scikit-learn: AUC {ours['auc']:.6f} ACC "
          f"{ours['accuracy']:.6f} F1 {ours['macro_f1']:.6f}; flexmoe eval: AUC "
          f"{theirs['auc']:.6f} ACC {theirs['accuracy']:.6f} F1 {theirs['macro_f1']:.6f}")
    worst = max(abs(ours[k] - theirs[k]) for k in ("auc", "accuracy", "macro_f1"))
    if worst > 1e-5:
        print(f"check: FAILED, largest difference {worst:.3g}", file=sys.stderr)
        return False
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prepared", required=True)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--flexmoe", action="append", default=[], metavar="NAME=PRED.csv")
    parser.add_argument("--check-eval")
    parser.add_argument("--check-predictions")
    args = parser.parse_args()
    summary, data = load(args.prepared)
    results = []
    for name, candidates in (("logreg", logreg_candidates()), ("hgb", hgb_candidates())):
        (label, model), tried = choose(candidates, data)
        result = score(name, model, data)
        result["chosen"], result["tried"] = label, tried
        results.append(result)
        o = result["overall"]
        print(f"{name} ({label}, chosen on validation): test AUC {100 * o['auc']:.2f} "
              f"ACC {100 * o['accuracy']:.2f} F1 {100 * o['macro_f1']:.2f} (n={o['count']})")
    for spec in args.flexmoe:
        name, _, path = spec.partition("=")
        preds = Predictions(path, summary["class_names"], data["testing"][0])
        result = score(name, preds, data)
        results.append(result)
        o = result["overall"]
        print(f"{name} ({path}): test AUC {100 * o['auc']:.2f} ACC {100 * o['accuracy']:.2f} "
              f"F1 {100 * o['macro_f1']:.2f} (n={o['count']})")
    print("\ntest AUC per combination (%)")
    print(f"{'combination':40s} {'n':>5s} " + " ".join(f"{r['model'][:10]:>10s}" for r in results))
    for c, m in results[0]["per_combination"].items():
        cells = []
        for r in results:
            auc = r["per_combination"][c]["auc"]
            cells.append(f"{100 * auc:10.2f}" if auc is not None else f"{'-':>10s}")
        print(f"{c:40s} {m['count']:5d} " + " ".join(cells))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    ok = True
    if args.check_eval and args.check_predictions:
        ok = check_flexmoe(args.check_eval, args.check_predictions, data, summary["class_names"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
