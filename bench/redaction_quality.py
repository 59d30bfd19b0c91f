"""Quality and speed of `bot.privacy.redact` on the labelled corpora, before and after issue 12.

    .venv/bin/python bench/redaction_quality.py [--corpus PATH ...] [--rounds 20]

Corpora (default both): tests/data/redaction_corpus.jsonl (regression, written with the
patterns) and tests/data/redaction_heldout.jsonl (public test vectors, written before the
issue 12 detectors and not tuned on; see tests/data/README.md). Each is scored for the
current `redact` and for `bench/redaction_baseline.py` (a frozen copy of the redactor before
issue 12), so before/after figures come from one run.

False alarms: the share of ordinary fan messages with no personal data that get any
placeholder: the in-domain examples of rasa_project/data/nlu.yml and, when present, the
development sets in /work/shared/eval (measured only; never copied anywhere).

Scoring, per PII item. For each corpus line, E is the multiset of placeholders in
`expected` and P the multiset in `redact(text).text` (placeholders already present in
`text` are subtracted from both, so pre-redacted input does not count). Per placeholder
type t:

    TP_t = min(E_t, P_t)    FP_t = P_t - TP_t    FN_t = E_t - TP_t

summed over lines. A wrong type (a phone redacted as [CARD]) is therefore one FP for
[CARD] and one FN for [PHONE]. Precision = TP / (TP + FP), recall = TP / (TP + FN),
overall and per type. Counting placeholders cannot see *which* span was replaced, so the
exact-text match of each line is reported beside it (the unit tests require it for every
line), and negatives (lines whose expected text equals the input) are counted as left
unchanged or not.

Speed: every corpus line redacted `--rounds` times (after one warm-up pass), each call
timed alone; mean, p50 and p99 in microseconds per message. Corpus lines are short (about
50 characters), so the same is done for the lines packed into ~200-character messages,
the size the product's target is about, and for a built-in sample of ordinary chat of
that size. A machine reference (a fixed pure-Python loop) is printed to compare runs on
different hardware. Figures only: nothing here asserts, and the exit status is 0.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redaction_baseline  # noqa: E402

from bot.privacy.redact import PLACEHOLDERS, redact  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPORA = [ROOT / "tests" / "data" / "redaction_corpus.jsonl", ROOT / "tests" / "data" / "redaction_heldout.jsonl"]
NLU = ROOT / "rasa_project" / "data" / "nlu.yml"
SHARED_EVAL = Path("/work/shared/eval")
TARGET_RECALL = 0.97  # per type, on the held-out corpus (issue 12)
TARGET_PRECISION = 0.99
TARGET_FALSE_ALARMS = 0.0005
PLACEHOLDER_RE = re.compile("|".join(re.escape(p) for p in PLACEHOLDERS))
#: Ordinary ~200-character fan messages (what most turns look like): a few numbers, the
#: odd link or address, mostly words.
TYPICAL = [
    "omg the finale of starfall chronicles was insane, anyone else crying? also is season 3"
    " confirmed?? i need answers before i lose my mind lol, the soundtrack alone deserves an award",
    "hey, my stream keeps buffering on S02E05 since 2026-11-22 at 10:30, I pay $12.99 a month"
    " for 4K and get 1080p at best. order #A12345. anyone else? rated 9/10 anyway lol",
    "hi, i was charged twice this month for premium, my email is jane.doe@example.com and the"
    " card ends in 4242, can someone look at it? thanks, it happened on 22/11/2026 around 9pm",
    "Watch party tonight at 20:00 GMT in the voice channel! We start with episode 7 then the"
    " bonus content. Bring snacks 🍿 and please no spoilers for people still on season 1",
    "the app crashes every time I open the downloads tab, version 3.10.2 on Android 14, I already"
    " reinstalled twice and cleared the cache. see https://help.streamverse.example/playback",
    "Can someone explain the ending of Neon Harbor 2? I rewatched the last 20 minutes three times"
    " and I still don't get why the captain left the ship. Theories welcome, spoiler tags pls",
    "merch store says my hoodie shipped 5 days ago but tracking hasn't moved since Tuesday, order"
    " 100234567. Is there a number I can call or should I just wait a bit longer?",
    "just hit 1000 hours watched this year 😅 my top 3: Starfall Chronicles, Neon Harbor and The"
    " 100 rewatch. What are yours? Also 5.1 surround finally works on my TV after the update",
]


def placeholders(text: str) -> Counter:
    return Counter(PLACEHOLDER_RE.findall(text))


def ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 1.0


def score(rows: list[dict], redactor) -> tuple[Counter, Counter, Counter, list[tuple[str, str, str]]]:
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    mismatches: list[tuple[str, str, str]] = []
    for row in rows:
        text, expected = row["text"], row["expected"]
        got = redactor(text).text
        already = placeholders(text)
        want = placeholders(expected) - already
        have = placeholders(got) - already
        for name in PLACEHOLDERS:
            hit = min(want[name], have[name])
            tp[name] += hit
            fp[name] += have[name] - hit
            fn[name] += want[name] - hit
        if got != expected:
            mismatches.append((text, expected, got))
    return tp, fp, fn, mismatches


def report(path: Path, rows: list[dict], show: int) -> None:
    negatives = sum(row["expected"] == row["text"] for row in rows)
    print(f"corpus: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    print(f"lines: {len(rows)} ({len(rows) - negatives} with PII, {negatives} negatives)")
    before = score(rows, redaction_baseline.redact)
    after = score(rows, redact)
    print(f"{'type':<10} {'expected':>8} | {'before P':>8} {'before R':>8} | {'after P':>8} {'after R':>8} {'FP':>4} {'FN':>4}")
    for name in [*PLACEHOLDERS, "overall"]:
        def pr(result):
            tp, fp, fn = (sum(c.values()) if name == "overall" else c[name] for c in result[:3])
            return tp, fp, fn, ratio(tp, tp + fp), ratio(tp, tp + fn)
        b, a = pr(before), pr(after)
        if a[0] + a[2] + a[1] == 0:
            continue
        flag = "" if name == "overall" or (a[3] >= TARGET_PRECISION and a[4] >= TARGET_RECALL) else "  BELOW target"
        print(f"{name:<10} {a[0] + a[2]:>8} | {b[3]:>8.3f} {b[4]:>8.3f} | {a[3]:>8.3f} {a[4]:>8.3f} {a[1]:>4} {a[2]:>4}{flag}")
    exact_before = len(rows) - len(before[3])
    print(f"lines redacted exactly as expected: before {exact_before}/{len(rows)}, after {len(rows) - len(after[3])}/{len(rows)}")
    for text, expected, got in after[3][:show]:
        print(f"  mismatch: {text!r}\n    expected {expected!r}\n    got      {got!r}")
    print()


def nlu_examples() -> list[str]:
    """In-domain examples of the training data, entity annotations removed."""
    texts = []
    for line in NLU.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("- ") and not stripped.startswith(("- intent:", "- synonym:", "- regex:", "- lookup:")):
            texts.append(re.sub(r"\[([^\]]*)\]\([^)]*\)|\[([^\]]*)\]\{[^}]*\}", lambda m: m.group(1) or m.group(2), stripped[2:]))
    return texts


def false_alarms(label: str, texts: list[str], show: bool) -> None:
    for name, redactor in (("before", redaction_baseline.redact), ("after", redact)):
        changed = [t for t in texts if redactor(t).counts]
        share = ratio(len(changed), len(texts)) if texts else 0.0
        flag = "" if name == "before" or share <= TARGET_FALSE_ALARMS else "  ABOVE target"
        print(f"false alarms, {label}, {name}: {len(changed)}/{len(texts)} ({share * 100:.3f} %){flag}")
        if show and name == "after":
            for text in changed[:10]:
                print(f"  changed: {text!r} -> {redactor(text).text!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, action="append", help="default: both corpora in tests/data")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--show", type=int, default=0, help="print this many mismatches per corpus")
    args = parser.parse_args()

    texts: list[str] = []
    for path in args.corpus or DEFAULT_CORPORA:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        report(path, rows, args.show)
        texts += [row["text"] for row in rows]
    nlu = nlu_examples()
    false_alarms("rasa_project/data/nlu.yml in-domain examples", nlu, show=True)
    plain = [t for t in TYPICAL if "@" not in t]  # one sample message carries an e-mail on purpose
    false_alarms("built-in ordinary chat without personal data", plain, show=True)
    shared = [line.strip() for f in sorted(SHARED_EVAL.glob("*.txt")) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()] if SHARED_EVAL.is_dir() else []
    if shared:
        false_alarms("/work/shared/eval dev sets (measured only)", shared, show=False)
    ordinary = nlu + plain + shared
    false_alarms("all ordinary messages", ordinary, show=False)
    print()
    for label, sample, rounds in (
        ("corpus lines (both corpora)", texts, args.rounds),
        ("ordinary fan messages", ordinary, args.rounds),
        ("PII-dense ~200-char messages (corpus lines joined)", joined(texts, 200), args.rounds),
    ):
        before = timings(redaction_baseline.redact, sample, rounds)
        after = timings(redact, sample, rounds)
        print(f"speed, {label}: {len(after)} calls ({rounds} rounds x {len(sample)})")
        for name, values in (("before", before), ("after", after)):
            print(f"  {name:<6} p50 {pct(values, 0.5):8.1f} us   p99 {pct(values, 0.99):8.1f} us   mean {statistics.fmean(values):8.1f} us")
        print(f"  ratio after/before: p50 {pct(after, 0.5) / pct(before, 0.5):.2f}x, p99 {pct(after, 0.99) / pct(before, 0.99):.2f}x"
              f"; p99 target <= 2000 us: {'met' if pct(after, 0.99) <= 2000 else 'MISSED'}")
    start = time.perf_counter()
    for _ in range(1000):
        sum(range(1000))
    print(f"machine reference: sum(range(1000)) takes {(time.perf_counter() - start) * 1000:.1f} us here")
    return 0


def joined(texts: list[str], size: int) -> list[str]:
    """Corpus lines packed into messages of about `size` characters: the typical length."""
    messages: list[str] = []
    current = ""
    for text in texts:
        current = f"{current} {text}" if current else text
        if len(current) >= size:
            messages.append(current)
            current = ""
    return messages


def timings(redactor, texts: list[str], rounds: int) -> list[float]:
    """Microseconds per call, each call timed alone, after one warm-up pass."""
    for text in texts:
        redactor(text)
    values: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(max(1, rounds)):
        for text in texts:
            start = clock()
            redactor(text)
            values.append((clock() - start) / 1000)
    values.sort()
    return values


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))]


if __name__ == "__main__":
    sys.exit(main())
