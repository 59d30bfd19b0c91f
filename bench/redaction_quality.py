"""Quality and speed of `bot.privacy.redact` on the labelled corpus.

    .venv/bin/python bench/redaction_quality.py [--corpus PATH] [--rounds 50]

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

from bot.privacy.redact import PLACEHOLDERS, redact  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT / "tests" / "data" / "redaction_corpus.jsonl"
TARGET_RECALL = 0.98
TARGET_PRECISION = 0.95
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


def verdict(value: float, target: float) -> str:
    return "meets target" if value >= target else "BELOW target"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()

    rows = [json.loads(line) for line in args.corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    exact = 0
    negatives = negatives_unchanged = 0
    mismatches: list[tuple[str, str, str]] = []
    for row in rows:
        text, expected = row["text"], row["expected"]
        got = redact(text).text
        already = placeholders(text)
        want = placeholders(expected) - already
        have = placeholders(got) - already
        for name in PLACEHOLDERS:
            hit = min(want[name], have[name])
            tp[name] += hit
            fp[name] += have[name] - hit
            fn[name] += want[name] - hit
        exact += got == expected
        if got != expected:
            mismatches.append((text, expected, got))
        if expected == text:
            negatives += 1
            negatives_unchanged += got == text

    total_tp, total_fp, total_fn = sum(tp.values()), sum(fp.values()), sum(fn.values())
    precision = ratio(total_tp, total_tp + total_fp)
    recall = ratio(total_tp, total_tp + total_fn)
    print(f"corpus: {args.corpus.relative_to(ROOT) if args.corpus.is_relative_to(ROOT) else args.corpus}")
    print(f"lines: {len(rows)} ({len(rows) - negatives} with PII, {negatives} negatives)")
    print(f"PII items expected: {total_tp + total_fn}")
    print()
    print(f"{'type':<10} {'TP':>5} {'FP':>5} {'FN':>5} {'precision':>10} {'recall':>8}")
    for name in PLACEHOLDERS:
        print(
            f"{name:<10} {tp[name]:>5} {fp[name]:>5} {fn[name]:>5}"
            f" {ratio(tp[name], tp[name] + fp[name]):>10.3f} {ratio(tp[name], tp[name] + fn[name]):>8.3f}"
        )
    print(f"{'overall':<10} {total_tp:>5} {total_fp:>5} {total_fn:>5} {precision:>10.3f} {recall:>8.3f}")
    print()
    targets = (("precision", precision, TARGET_PRECISION), ("recall", recall, TARGET_RECALL))
    for label, value, target in targets:
        print(
            f"{label:<9} {value:.3f} (target >= {target}, {value / target:.3f} of target):"
            f" {verdict(value, target)}"
        )
    unchanged_share = ratio(negatives_unchanged, negatives)
    print(f"negatives left unchanged: {negatives_unchanged}/{negatives} ({unchanged_share:.3f})")
    print(f"lines redacted exactly as expected: {exact}/{len(rows)} ({ratio(exact, len(rows)):.3f})")
    for text, expected, got in mismatches[:20]:
        print(f"  mismatch: {text!r}\n    expected {expected!r}\n    got      {got!r}")

    texts = [row["text"] for row in rows]
    print()
    print(speed("corpus lines", texts, args.rounds))
    print(speed("typical ~200-char chat (built-in sample)", TYPICAL, args.rounds * 30))
    print(speed("PII-dense ~200-char messages (corpus lines joined)", joined(texts, 200), args.rounds))
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


def speed(label: str, texts: list[str], rounds: int) -> str:
    for text in texts:
        redact(text)  # warm-up
    timings: list[int] = []
    clock = time.perf_counter_ns
    for _ in range(max(1, rounds)):
        for text in texts:
            start = clock()
            redact(text)
            timings.append(clock() - start)
    timings.sort()
    mean_us = statistics.fmean(timings) / 1000
    p50_us = timings[len(timings) // 2] / 1000
    p99_us = timings[min(len(timings) - 1, int(len(timings) * 0.99))] / 1000
    mean_chars = statistics.fmean(len(text) for text in texts)
    return (
        f"speed, {label}: {len(timings)} calls ({rounds} rounds x {len(texts)}, mean {mean_chars:.0f} chars):"
        f" mean {mean_us:.1f} us, p50 {p50_us:.1f} us, p99 {p99_us:.1f} us per message"
    )


if __name__ == "__main__":
    sys.exit(main())
