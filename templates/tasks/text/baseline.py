"""The baseline a network has to beat: TF-IDF features and logistic regression (scikit-learn), same split.

    python baseline.py                 # data.root of config.yaml (the demo by default)
    python baseline.py --data DIR      # your data

Prints the validation accuracy and macro-F1 and adds ``baseline_val_acc1`` and ``baseline_val_macro_f1`` (both
in percent) to ``<run.out>/summary.json``, beside the network's ``best_val_acc1``: if the network does not beat
this, it does not earn its cost. Word uni- and bigrams with sublinear term frequency are the strong linear text
classifier of Wang & Manning 2012 ("Baselines and Bigrams") and the fastText paper's comparison (Joulin et al.
2016, arXiv:1607.01759).
"""

import argparse
import json
import time
from pathlib import Path
from typing import Any

import yaml

import data
from errors import ProjectError, run_main

HERE = Path(__file__).resolve().parent


def tfidf_baseline(train: data.Split, val: data.Split, seed: int = 0) -> dict[str, float]:
    """Fit on ``train``, score on ``val``: accuracy and macro-F1 in percent, and the seconds it took."""
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import accuracy_score, f1_score
        from sklearn.pipeline import make_pipeline
    except ImportError as e:
        raise ProjectError("the baseline needs scikit-learn: pip install scikit-learn") from e
    started = time.perf_counter()
    pipeline = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, strip_accents="unicode"),
        LogisticRegression(C=10.0, max_iter=2000, random_state=seed),
    )
    pipeline.fit(train.texts, train.labels)
    predicted = pipeline.predict(val.texts)
    return {
        "baseline_val_acc1": 100.0 * accuracy_score(val.labels, predicted),
        "baseline_val_macro_f1": 100.0 * f1_score(val.labels, predicted, average="macro"),
        "baseline_seconds": time.perf_counter() - started,
    }


def majority_acc1(train: data.Split, val: data.Split) -> float:
    """Accuracy (%) of always answering the most frequent training label: what a model that learned nothing
    scores."""
    most = max(set(train.labels), key=train.labels.count)
    return 100.0 * sum(y == most for y in val.labels) / len(val.labels)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description="TF-IDF + logistic regression on the same split.")
    p.add_argument("--config", type=Path, default=HERE / "config.yaml")
    p.add_argument("--data", type=Path, help="dataset root (overrides data.root)")
    p.add_argument("--out", type=Path, help="run folder whose summary.json gets the scores (default: run.out)")
    args = p.parse_args(argv)
    with open(args.config, encoding="utf-8") as fh:
        cfg = yaml.safe_load(fh)
    d = cfg["data"]
    root = data.resolve_root(str(args.data) if args.data else d["root"])
    train, val = (data.read_split(root, s, d["text_column"], d["label_column"]) for s in data.SPLITS)
    data.check_val_classes(root, data.class_names(train.labels), val.labels)
    scores = {**tfidf_baseline(train, val, cfg["run"]["seed"]), "majority_val_acc1": majority_acc1(train, val)}
    print(f"TF-IDF + logistic regression on {root}: val accuracy {scores['baseline_val_acc1']:.2f}%, macro-F1 "
          f"{scores['baseline_val_macro_f1']:.2f}% ({scores['baseline_seconds']:.1f} s); majority class "
          f"{scores['majority_val_acc1']:.2f}%")  # fmt: skip
    out = args.out or Path(cfg["run"]["out"])
    out.mkdir(parents=True, exist_ok=True)
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}
    summary.update(scores)
    summary_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return scores


if __name__ == "__main__":
    run_main(main)
