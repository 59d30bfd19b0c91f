#!/usr/bin/env python3
"""NLU cross-validation benchmark for the StreamVerse fan assistant.

Runs ``rasa test nlu --cross-validation`` on ``rasa_project/`` with Rasa's own
environment (``rasa_project/.venv``, Python 3.10: since issue 15 the bot's
environment holds no Rasa), then prints:

* per-intent F1 from ``intent_report.json`` and two macro averages: over all
  intents, and over the in-domain intents (``out_of_scope`` trained and tested
  with the rest but left out of the average: issue 14's figure), ending in
  ``macro_f1_in_domain=0.xxx target>=0.93 ratio=...``;
* a fallback-threshold sweep built from ``intent_successes.json`` and
  ``intent_errors.json``: for each threshold, the share of correct predictions
  that would fall below it (false fallbacks) and the share of wrong
  predictions that would stay above it (wrong answers that get through).

Why these files: in Rasa 3.6 ``rasa test nlu --cross-validation`` writes the
accumulated test-fold results of all folds to ``--out``: ``intent_report.json``
always, ``intent_errors.json`` unless ``--no-errors`` and
``intent_successes.json`` with ``--successes``. During evaluation Rasa undoes
the FallbackClassifier's ``nlu_fallback`` (rasa/nlu/test.py), so each entry
holds the raw top intent and its confidence: exactly what a threshold sweep
needs. Only the top-1 confidence is stored, so the ambiguity threshold (gap
between the top two intents) cannot be swept from these files. For that,
``--ambiguity-sweep`` runs a second, own 5-fold loop through rasa's Python
API (train_nlu + Agent.load + parse_message, about a minute with the
LogisticRegression pipeline) that keeps the top-2 confidences and prints a
threshold x ambiguity_threshold grid.

Usage (from the repository root)::

    .venv/bin/python bench/nlu_eval.py [--folds 5] [--out DIR] [--config FILE]
                                       [--ambiguity-sweep]

Without ``--out`` the results go to a temporary folder that is removed at the
end. Timings are printed for information only; nothing is asserted. The exit
code is 0 whenever the figures could be produced (whatever they are) and 1 if
rasa itself failed or wrote no report.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

REPO_ROOT = Path(__file__).resolve().parent.parent
PROJECT_DIR = REPO_ROOT / "rasa_project"
TARGET_MACRO_F1 = 0.93  # issue 14
SWEEP_THRESHOLDS = [round(0.20 + 0.05 * i, 2) for i in range(11)]  # 0.20 .. 0.70
SUMMARY_KEYS = {"accuracy", "macro avg", "weighted avg", "micro avg"}


RASA_PYTHON = PROJECT_DIR / ".venv" / "bin" / "python"


def find_rasa() -> list[str]:
    """Rasa's CLI in Rasa's own environment (`make setup` builds it)."""
    if not RASA_PYTHON.exists():
        print(f"nlu_eval: no Rasa environment at {RASA_PYTHON.parent.parent}: run `make setup`", file=sys.stderr)
        raise SystemExit(2)
    return [str(RASA_PYTHON), "-m", "rasa"]


def run_cross_validation(
    out_dir: Path, folds: int, config: Path, nlu: Path
) -> tuple[int, float, Path]:
    cmd = find_rasa() + [
        "test",
        "nlu",
        "--cross-validation",
        "--folds",
        str(folds),
        "--config",
        str(config),
        "--nlu",
        str(nlu),
        "--out",
        str(out_dir),
        "--successes",
        "--no-plot",
    ]
    env = dict(os.environ)
    env["RASA_TELEMETRY_ENABLED"] = "false"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    log_path = out_dir / "rasa_test_nlu.log"
    print("running:", " ".join(cmd), flush=True)
    start = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.run(
            cmd, cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    return proc.returncode, time.monotonic() - start, log_path


def load_json(path: Path) -> Optional[list]:
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


#: Not one of the assistant's topics: trained and tested with the rest, left out of the in-domain average.
OUT_OF_SCOPE = "out_of_scope"


def print_report(report: dict) -> float:
    intents = sorted(k for k in report if k not in SUMMARY_KEYS)
    width = max([len(i) for i in intents] + [12])
    print()
    print(f"{'intent':<{width}}  precision  recall     f1  support  confused_with")
    for name in intents:
        row = report[name]
        confused = row.get("confused_with") or {}
        top = ", ".join(f"{k}({v})" for k, v in list(confused.items())[:2])
        print(
            f"{name:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}"
            f"  {row['f1-score']:5.3f}  {row['support']:7d}  {top}"
        )
    macro = report["macro avg"]["f1-score"]
    weighted = report["weighted avg"]["f1-score"]
    accuracy = report.get("accuracy")
    in_domain = [name for name in intents if name != OUT_OF_SCOPE]
    macro_in = sum(report[name]["f1-score"] for name in in_domain) / len(in_domain)
    print()
    if accuracy is not None:
        print(f"accuracy={accuracy:.3f}")
    print(f"weighted_f1={weighted:.3f}")
    print(f"macro_f1_all_intents={macro:.3f} ({len(intents)} intents, {OUT_OF_SCOPE} included)")
    # Issue 14's figure: every example (out-of-scope ones too) trained and tested in the folds,
    # F1 averaged over the in-domain intents. An in-domain example taken for out_of_scope lowers
    # its intent's recall; an out-of-scope one taken for an intent lowers that intent's precision.
    print(f"macro_f1_in_domain={macro_in:.3f} ({len(in_domain)} intents) target>={TARGET_MACRO_F1:.2f} ratio={macro_in / TARGET_MACRO_F1:.3f}")
    return macro_in


def configured_fallback(config: Path) -> tuple[Optional[float], Optional[float]]:
    """Threshold and ambiguity_threshold of the FallbackClassifier, if any."""
    try:
        import yaml  # PyYAML: in the bot's environment too
    except ImportError:  # pragma: no cover
        return None, None
    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None, None
    for comp in data.get("pipeline") or []:
        if isinstance(comp, dict) and comp.get("name") == "FallbackClassifier":
            return comp.get("threshold", 0.3), comp.get("ambiguity_threshold", 0.1)
    return None, None


def print_sweep(
    successes: list[dict], errors: list[dict], config: Path, wrong_cost: float
) -> None:
    ok = [float(e["intent_prediction"]["confidence"] or 0.0) for e in successes]
    bad = [float(e["intent_prediction"]["confidence"] or 0.0) for e in errors]
    n_ok, n_bad = len(ok), len(bad)
    total = n_ok + n_bad
    print()
    print(f"fallback threshold sweep over {total} held-out predictions "
          f"({n_ok} correct, {n_bad} wrong)")
    if total == 0:
        print("no predictions found")
        return
    print("threshold  false_fallback(correct<t)  wrong_passed(wrong>=t)  "
          "answered_correctly  fallback_rate")
    best = None
    for t in SWEEP_THRESHOLDS:
        ff = sum(c < t for c in ok)
        wp = sum(c >= t for c in bad)
        fb = (ff + (n_bad - wp)) / total
        ff_rate = ff / n_ok if n_ok else 0.0
        wp_rate = wp / n_bad if n_bad else 0.0
        print(
            f"  {t:4.2f}     {ff_rate:6.1%} ({ff:4d}/{n_ok})"
            f"        {wp_rate:6.1%} ({wp:3d}/{n_bad})"
            f"        {(n_ok - ff) / total:6.1%}        {fb:6.1%}"
        )
        # Expected cost over these predictions: a needless "didn't understand"
        # costs 1, a wrong answer that gets through costs `wrong_cost`.
        cost = ff + wrong_cost * wp
        if best is None or cost < best[1] - 1e-9:
            best = (t, cost)
    if ok:
        s = sorted(ok)
        print(f"confidence of correct predictions: p05={s[int(0.05 * (len(s) - 1))]:.2f} "
              f"p10={s[int(0.10 * (len(s) - 1))]:.2f} median={s[len(s) // 2]:.2f}")
    if bad:
        s = sorted(bad)
        print(f"confidence of wrong predictions:   p50={s[len(s) // 2]:.2f} "
              f"p90={s[int(0.90 * (len(s) - 1))]:.2f} max={s[-1]:.2f}")
    if best is not None:
        print(f"suggested_threshold={best[0]:.2f} (minimises false_fallbacks + "
              f"{wrong_cost:g} x wrong_passed over the sweep)")
    thr, amb = configured_fallback(config)
    if thr is not None:
        print(f"configured FallbackClassifier: threshold={thr} ambiguity_threshold={amb} "
              "(ambiguity needs the top-2 gap, which rasa does not write out, so it is not swept)")

# Runs in a child interpreter: own folds through rasa's Python API, keeping
# the top two intent confidences of every held-out example (FallbackClassifier
# removed from the pipeline, so the ranking is the classifier's own).
RANK_WORKER = r"""
import asyncio, json, sys, tempfile
from pathlib import Path
try:
    # skops builds its trusted-type list by scanning sys.modules; imported
    # before rasa pulls in TensorFlow that scan takes ~1 s instead of ~10 s.
    import skops.io  # noqa: F401
except ImportError:
    pass
import yaml
import rasa.model_training
from rasa.core.agent import Agent
from rasa.nlu.test import generate_folds
from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLWriter
from rasa.shared.nlu.training_data.loading import load_data

config_path, nlu_path, out_path, folds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cfg = yaml.safe_load(Path(config_path).read_text(encoding="utf-8"))
cfg["pipeline"] = [c for c in cfg["pipeline"] if c.get("name") != "FallbackClassifier"]
tmp = Path(tempfile.mkdtemp(prefix="nlu_eval_rank_"))
(tmp / "config.yml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
data = load_data(nlu_path)
rows = []

async def run():
    for k, (train, test) in enumerate(generate_folds(folds, data)):
        RasaYAMLWriter().dump(tmp / "train.yml", train)
        model = rasa.model_training.train_nlu(str(tmp / "config.yml"), str(tmp / "train.yml"), str(tmp))
        agent = Agent.load(model)
        for ex in test.intent_examples:
            parsed = await agent.parse_message(ex.get("text"))
            ranking = parsed.get("intent_ranking") or [parsed["intent"]]
            rows.append({
                "text": ex.get("text"),
                "target": ex.get("intent"),
                "pred": ranking[0]["name"],
                "c1": float(ranking[0]["confidence"]),
                "c2": float(ranking[1]["confidence"]) if len(ranking) > 1 else 0.0,
            })
        print(f"ambiguity sweep: fold {k + 1}/{folds} done", flush=True)

asyncio.run(run())
Path(out_path).write_text(json.dumps(rows), encoding="utf-8")
"""

GRID_THRESHOLDS = [round(0.20 + 0.05 * i, 2) for i in range(7)]  # 0.20 .. 0.50
GRID_AMBIGUITY = [0.0, 0.05, 0.10, 0.15, 0.20]


def run_ambiguity_sweep(
    out_dir: Path, folds: int, config: Path, nlu: Path, wrong_cost: float
) -> bool:
    rows_path = out_dir / "ranking_predictions.json"
    log_path = out_dir / "ambiguity_sweep.log"
    env = dict(os.environ)
    env["RASA_TELEMETRY_ENABLED"] = "false"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    cmd = find_rasa()[:1] + ["-c", RANK_WORKER, str(config), str(nlu), str(rows_path), str(folds)]
    print(f"\nrunning own {folds}-fold loop for the ambiguity sweep (python API) ...", flush=True)
    start = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.run(cmd, cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    print(f"ambiguity sweep: exit={proc.returncode} wall_time={time.monotonic() - start:.1f}s (informational)")
    rows = load_json(rows_path)
    if proc.returncode != 0 or not rows:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        print("ambiguity sweep failed; last lines of its log:")
        print("\n".join(lines[-20:]))
        return False
    ok = [r for r in rows if r["pred"] == r["target"]]
    bad = [r for r in rows if r["pred"] != r["target"]]
    print(f"threshold x ambiguity_threshold over {len(rows)} held-out predictions "
          f"({len(ok)} correct, {len(bad)} wrong; folds differ from the run above)")
    print("threshold  ambiguity  false_fallback(correct)  caught(wrong)   cost")
    best = None
    for t in GRID_THRESHOLDS:
        for a in GRID_AMBIGUITY:
            def falls_back(r: dict) -> bool:
                return r["c1"] < t or (r["c1"] - r["c2"]) < a

            ff = sum(falls_back(r) for r in ok)
            caught = sum(falls_back(r) for r in bad)
            cost = ff + wrong_cost * (len(bad) - caught)
            print(f"  {t:4.2f}       {a:4.2f}     {ff / max(len(ok), 1):6.1%} ({ff:4d})"
                  f"        {caught / max(len(bad), 1):6.1%} ({caught:3d})  {cost:6.1f}")
            if best is None or cost < best[2] - 1e-9:
                best = (t, a, cost)
    if best is not None:
        print(f"suggested threshold={best[0]:.2f} ambiguity_threshold={best[1]:.2f} "
              f"(minimises false_fallbacks + {wrong_cost:g} x wrong_passed)")
    return True


def run_registers() -> bool:
    """The fairness audit through the trained model (rasa_project/models/fan.tar.gz) the way the
    bot classifies: `bot.nlu_audit.audit` with `ModelServerEngine` against a real model server
    (started as `bot` starts it), on the register set (tests/data, never trained on) and our own
    held-out phrasings."""
    import asyncio

    sys.path.insert(0, str(REPO_ROOT))
    from bench.servers import start_model_server
    from bot.engine.remote import ModelServerEngine
    from bot.nlu_audit import REGISTERS, audit

    own = REPO_ROOT / "bench" / "data" / "nlu_own_heldout.jsonl"
    try:
        server = start_model_server()
    except RuntimeError as error:
        print("register audit failed:", error)
        return False

    async def both() -> dict:
        engine = ModelServerEngine([server.url], server.token, timeout_seconds=60)
        try:
            return {name: await audit(engine, path) for name, path in (("registers", REGISTERS), ("own_heldout", own))}
        finally:
            await engine.aclose()

    try:
        reports = asyncio.run(both())
    finally:
        server.stop()
    for name, report in reports.items():
        scores = "  ".join(f"{k} {v:.3f}" for k, v in report["macro_f1"].items())
        print(f"\n{name} ({report['examples']} examples, trained model): {scores}")
        print(f"{name}_worst={report['worst']:.3f} target>=0.90  worst/best={report['worst_best_ratio']:.3f} target>=0.95")
    return True


def without_out_of_scope(nlu: Path, folder: Path) -> Path:
    """A copy of the NLU data (a file or a folder of them) without the out-of-scope examples."""
    import yaml  # PyYAML: in the bot's environment too

    folder.mkdir(parents=True, exist_ok=True)
    for path in [nlu] if nlu.is_file() else sorted(nlu.glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if "nlu" not in data:
            continue
        data["nlu"] = [block for block in data["nlu"] if block.get("intent") != OUT_OF_SCOPE]
        (folder / path.name).write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return folder


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results folder (kept); default: a temporary folder, removed afterwards")
    parser.add_argument("--config", type=Path, default=PROJECT_DIR / "config.yml",
                        help="pipeline config to evaluate (default rasa_project/config.yml)")
    parser.add_argument("--nlu", type=Path, default=PROJECT_DIR / "data",
                        help="NLU training data, a file or folder (default all of rasa_project/data)")
    parser.add_argument("--wrong-cost", type=float, default=2.0,
                        help="cost of a wrong answer relative to a needless fallback, "
                             "used for the suggested threshold (default 2)")
    parser.add_argument("--ambiguity-sweep", action="store_true",
                        help="also run an own k-fold loop via rasa's Python API that keeps the "
                             "top-2 confidences, and sweep threshold x ambiguity_threshold "
                             "(adds about a minute)")
    parser.add_argument("--in-domain-only", action="store_true",
                        help=f"leave the {OUT_OF_SCOPE} examples out of the data altogether (the classifier "
                             "telling the assistant's own intents apart)")
    parser.add_argument("--no-registers", action="store_true",
                        help="skip the register audit of the trained model (bot audit nlu)")
    args = parser.parse_args(argv)

    config = args.config.resolve()
    nlu = args.nlu.resolve()
    if args.out is None:
        out_dir = Path(tempfile.mkdtemp(prefix="nlu_eval_"))
        keep = False
    else:
        out_dir = args.out.resolve()
        out_dir.mkdir(parents=True, exist_ok=True)
        keep = True

    try:
        if args.in_domain_only:
            nlu = without_out_of_scope(nlu, out_dir / "in_domain_data")
        rc, elapsed, log_path = run_cross_validation(out_dir, args.folds, config, nlu)
        print(f"rasa test nlu --cross-validation --folds {args.folds}: exit={rc} "
              f"wall_time={elapsed:.1f}s (informational)")
        report = load_json(out_dir / "intent_report.json")
        if rc != 0 or report is None:
            print(f"rasa failed or wrote no intent_report.json; last lines of {log_path}:")
            lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
            print("\n".join(lines[-30:]))
            return 1
        print_report(report)
        successes = load_json(out_dir / "intent_successes.json") or []
        errors = load_json(out_dir / "intent_errors.json") or []
        print_sweep(successes, errors, config, args.wrong_cost)
        if args.ambiguity_sweep:
            run_ambiguity_sweep(out_dir, args.folds, config, nlu, args.wrong_cost)
        if not args.no_registers:
            run_registers()
        if keep:
            print(f"\nresults kept in {out_dir}")
        return 0
    finally:
        if not keep:
            shutil.rmtree(out_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
