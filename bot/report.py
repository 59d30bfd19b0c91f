"""`bot report`: is the product keeping its promises? Figures from stored metadata only.

Reads the minimized events (`bot.privacy.events`), the ratings, the tickets' and turns'
timestamps and the audit chain; never a message body, never a key. Fans appear only as
counts: no pseudonym, no conversation id, no text leaves this module. The JSON shape is
documented in docs/report.md and docs/report.schema.json (`SCHEMA`).

Percentiles are nearest-rank (the smallest observed value with at least p % of the
observations at or below it), so every figure shown is a real observed duration.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Optional

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from bot.privacy import events as ev
from bot.privacy.audit import AuditLog
from bot.privacy.schema import events, ratings, turns

SCHEMA = "fan-assistant-report/1"
#: Reply kinds that are the model's (or the core's) answer to a question: the per-intent figures.
ANSWER_KINDS = ("answer", "fallback")
CONFIDENCE_BINS = 10
WORST_RATED = 5
#: An intent needs this many ratings to be listed among the worst rated.
MIN_RATINGS = 1


def percentile(values: Sequence[float], p: float) -> Optional[float]:
    """Nearest-rank percentile of `values` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def durations(values: Sequence[float]) -> dict[str, Any]:
    return {"count": len(values), "p50": percentile(values, 50), "p90": percentile(values, 90), "max": max(values) if values else None}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _rate(part: int, whole: int) -> Optional[float]:
    return round(part / whole, 4) if whole else None


def is_nlu_audit(data: Any) -> bool:
    """Whether `data` has what the report shows of a `bot audit nlu --json` result: finite
    numbers `worst` and `worst_best_ratio`, and `macro_f1` mapping register names to finite
    numbers. Anything else would fail only while rendering, with a traceback."""

    def number(value: Any) -> bool:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
        try:
            return math.isfinite(value)
        except OverflowError:  # an integer past a float's range (JSON allows any length)
            return False

    if not isinstance(data, dict) or not all(number(data.get(key)) for key in ("worst", "worst_best_ratio")):
        return False
    scores = data.get("macro_f1")
    return isinstance(scores, dict) and all(number(score) for score in scores.values())


def build(
    connection: Connection,
    audit_log: AuditLog,
    *,
    since_days: float,
    now: datetime,
    retention_days: float,
    purge_interval_minutes: float = 60.0,
    nlu_audit: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    """The report as a JSON-ready dict; `now` is a naive UTC datetime (the store's convention).
    The period ends at the newest recorded event (at most `now`): about now for a live store;
    for a store `bot replay` wrote on its clock, the end of the replay, so a report over a
    replayed month shows that month. The retention check is against `now`."""
    until = _latest(connection, ev.epoch(now))
    since = until - since_days * 86400
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "generated_at": _iso(ev.epoch(now)),
        "period": {"since": _iso(since), "until": _iso(until), "days": since_days},
        "disclosure": _disclosure(connection, since, until),
    }
    report.update(_answers(connection, since, until))
    report["handoffs"] = _handoffs(connection, since, until)
    report["privacy"] = _privacy(connection, since, until, now, retention_days, purge_interval_minutes)
    audit = audit_log.verify()
    report["audit_chain"] = {"intact": audit.ok, "records": audit.records, "head": audit.head, "problem": audit.problem}
    report["nlu_audit"] = nlu_audit
    return report


def _latest(connection: Connection, now: float) -> float:
    """The newest event's time, at most `now` (`now` in an empty store)."""
    newest = connection.execute(select(func.max(events.c.at)).where(events.c.at <= now)).scalar()
    return float(newest) if newest is not None else now


def _disclosure(connection: Connection, since: float, until: float) -> dict[str, Any]:
    """Conversations that started in the period, by the kind of their first assistant message."""
    numbered = (
        select(
            events.c.reason,
            events.c.at,
            func.row_number().over(partition_by=events.c.conversation, order_by=(events.c.at, events.c.id)).label("n"),
        )
        .where(events.c.kind == ev.REPLY, events.c.conversation.is_not(None))
        .subquery()
    )
    firsts: dict[str, int] = dict(
        (str(kind), int(n))
        for kind, n in connection.execute(
            select(numbered.c.reason, func.count())
            .where(numbered.c.n == 1, numbered.c.at >= since, numbered.c.at <= until)
            .group_by(numbered.c.reason)
        ).all()
    )
    total = sum(firsts.values())
    disclosed = int(firsts.get("disclosure", 0))
    return {
        "conversations": total,
        "disclosed_first": disclosed,
        "exceptions": total - disclosed,
        "exceptions_by_first_kind": {kind: int(n) for kind, n in sorted(firsts.items()) if kind != "disclosure"},
        "coverage": _rate(disclosed, total),
    }


def _answers(connection: Connection, since: float, until: float) -> dict[str, Any]:
    rows = connection.execute(
        select(events.c.at, events.c.reason, events.c.intent, events.c.confidence).where(
            events.c.kind == ev.REPLY, events.c.at >= since, events.c.at <= until
        )
    ).all()
    by_kind: Counter[str] = Counter()
    per_day: Counter[str] = Counter()
    answers: Counter[str] = Counter()
    fallbacks: Counter[str] = Counter()
    confidences: dict[str, list[float]] = defaultdict(list)
    all_confidences: dict[str, list[float]] = {"answer": [], "fallback": []}
    for at, reason, intent, confidence in rows:
        by_kind[reason or "unknown"] += 1
        per_day[_iso(at)[:10]] += 1
        if reason not in ANSWER_KINDS:
            continue
        name = intent or "none"
        (answers if reason == "answer" else fallbacks)[name] += 1
        if confidence is not None:
            confidences[name].append(float(confidence))
            all_confidences[reason].append(float(confidence))
    rated: dict[str, Counter[str]] = defaultdict(Counter)
    for intent, rating, n in connection.execute(
        select(ratings.c.intent, ratings.c.rating, func.count())
        .where(ratings.c.at >= since, ratings.c.at <= until)
        .group_by(ratings.c.intent, ratings.c.rating)
    ).all():
        rated[intent or "none"][rating] += int(n)
    intents: list[dict[str, Any]] = []
    for name in sorted(set(answers) | set(fallbacks) | set(rated), key=lambda i: (-(answers[i] + fallbacks[i]), i)):
        good, bad = rated[name]["good"], rated[name]["bad"]
        values = confidences.get(name, [])
        intents.append(
            {
                "intent": name,
                "answers": answers[name],
                "fallbacks": fallbacks[name],
                "fallback_rate": _rate(fallbacks[name], answers[name] + fallbacks[name]),
                "confidence": {
                    "p10": percentile(values, 10), "p50": percentile(values, 50), "p90": percentile(values, 90),
                    "histogram": _histogram(values),
                },
                "ratings": {"good": good, "bad": bad},
                "helpful_rate": _rate(good, good + bad),
            }
        )
    worst = sorted(
        (i for i in intents if i["ratings"]["good"] + i["ratings"]["bad"] >= MIN_RATINGS and i["ratings"]["bad"]),
        key=lambda i: (i["helpful_rate"], -i["ratings"]["bad"], i["intent"]),
    )[:WORST_RATED]
    good_total = sum(r["good"] for r in rated.values())
    bad_total = sum(r["bad"] for r in rated.values())
    answered, fell_back = sum(answers.values()), sum(fallbacks.values())
    return {
        "replies": {"total": len(rows), "by_kind": dict(sorted(by_kind.items())), "per_day": dict(sorted(per_day.items()))},
        "answers": {
            "answers": answered,
            "fallbacks": fell_back,
            "fallback_rate": _rate(fell_back, answered + fell_back),
            "ratings": {"good": good_total, "bad": bad_total},
            "helpful_rate": _rate(good_total, good_total + bad_total),
            "confidence_histogram": {kind: _histogram(values) for kind, values in all_confidences.items()},
            "by_intent": intents,
            "worst_rated": [
                {"intent": i["intent"], "helpful_rate": i["helpful_rate"], "good": i["ratings"]["good"], "bad": i["ratings"]["bad"]}
                for i in worst
            ],
        },
    }


def _histogram(values: Sequence[float]) -> list[int]:
    """Counts in `CONFIDENCE_BINS` equal bins over [0, 1] (1.0 falls in the last)."""
    bins = [0] * CONFIDENCE_BINS
    for value in values:
        bins[min(CONFIDENCE_BINS - 1, max(0, int(value * CONFIDENCE_BINS)))] += 1
    return bins


def _handoffs(connection: Connection, since: float, until: float) -> dict[str, Any]:
    rows = connection.execute(
        select(events.c.kind, events.c.reason, events.c.seconds).where(
            events.c.kind.like("handoff%"), events.c.at >= since, events.c.at <= until
        )
    ).all()
    seconds: dict[str, list[float]] = defaultdict(list)
    count: Counter[str] = Counter()
    by_reason: Counter[str] = Counter()
    cancelled_from: Counter[str] = Counter()
    for kind, reason, value in rows:
        count[kind] += 1
        if kind == ev.HANDOFF_OPENED:
            by_reason[reason or "unknown"] += 1
        if kind == ev.HANDOFF_CANCELLED:
            cancelled_from[reason or "unknown"] += 1
        if value is not None:
            seconds[kind].append(float(value))
    return {
        "opened": count[ev.HANDOFF_OPENED],
        "by_reason": dict(sorted(by_reason.items())),
        "claimed": count[ev.HANDOFF_CLAIMED],
        "time_to_claim_seconds": durations(seconds[ev.HANDOFF_CLAIMED]),
        "time_to_first_moderator_reply_seconds": durations(seconds[ev.HANDOFF_FIRST_REPLY]),
        "resolved": count[ev.HANDOFF_RESOLVED],
        "time_to_resolve_seconds": durations(seconds[ev.HANDOFF_RESOLVED]),
        "timeouts": count[ev.HANDOFF_TIMEOUT],
        "cancelled": count[ev.HANDOFF_CANCELLED],
        "cancelled_while": dict(sorted(cancelled_from.items())),
        "unreachable": count[ev.HANDOFF_UNREACHABLE],
    }


def _privacy(
    connection: Connection, since: float, until: float, now: datetime, retention_days: float, purge_interval_minutes: float
) -> dict[str, Any]:
    rows = connection.execute(
        select(events.c.kind, events.c.reason, events.c.seconds, events.c.count).where(
            events.c.kind.in_([ev.EXPORT, ev.ERASURE, ev.PRIVACY_OFF, ev.PRIVACY_ON, ev.PURGE]),
            events.c.at >= since, events.c.at <= until,
        )
    ).all()
    count: Counter[str] = Counter()
    erasure_seconds: list[float] = []
    erasures_by: Counter[str] = Counter()
    purged = 0
    for kind, reason, seconds, n in rows:
        count[kind] += 1
        if kind == ev.ERASURE:
            erasures_by[reason or "unknown"] += 1
            if seconds is not None:
                erasure_seconds.append(float(seconds))
        if kind == ev.PURGE:
            purged += int(n or 0)
    oldest = connection.execute(select(func.min(turns.c.at))).scalar()
    age = (now - oldest).total_seconds() / 86400 if oldest is not None else None
    allowed = retention_days + purge_interval_minutes / 1440  # the purge runs every interval
    return {
        "exports": count[ev.EXPORT],
        "erasures": count[ev.ERASURE],
        "erasures_requested_by": dict(sorted(erasures_by.items())),
        "erasure_completion_seconds": durations(erasure_seconds),
        "privacy_off": count[ev.PRIVACY_OFF],
        "privacy_on": count[ev.PRIVACY_ON],
        "purge_runs": count[ev.PURGE],
        "turns_purged": purged,
        "retention_days": retention_days,
        "oldest_turn": _iso(ev.epoch(oldest)) if oldest is not None else None,
        "oldest_turn_age_days": round(age, 3) if age is not None else None,
        "oldest_turn_within_retention": None if age is None else age <= allowed,
    }


def duration_text(value: Optional[float]) -> str:
    if value is None:
        return "-"
    return str(timedelta(seconds=round(value)))


def percent_text(value: Optional[float]) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def render_text(report: dict[str, Any]) -> str:
    """The summary `bot report` prints."""
    d, a, h, p, c = report["disclosure"], report["answers"], report["handoffs"], report["privacy"], report["audit_chain"]
    lines = [
        f"Report {report['period']['since']} .. {report['period']['until']} ({report['period']['days']:g} days)",
        "AI disclosure first: no conversations in the period" if not d["conversations"] else
        f"AI disclosure first: {percent_text(d['coverage'])} of {d['conversations']} conversation(s), {d['exceptions']} exception(s)",
        f"Replies: {report['replies']['total']}; answers {a['answers']}, fallbacks {a['fallbacks']} ({percent_text(a['fallback_rate'])})",
        f"Ratings: {a['ratings']['good']} helpful, {a['ratings']['bad']} not helpful ({percent_text(a['helpful_rate'])} helpful)",
    ]
    if a["worst_rated"]:
        lines.append("Worst rated: " + ", ".join(f"{w['intent']} ({percent_text(w['helpful_rate'])})" for w in a["worst_rated"]))
    reasons = ", ".join(f"{k} {v}" for k, v in h["by_reason"].items()) or "none"
    lines += [
        f"Handoffs: {h['opened']} opened ({reasons}); {h['claimed']} claimed, {h['resolved']} resolved, "
        f"{h['timeouts']} timed out, {h['cancelled']} cancelled, {h['unreachable']} fan unreachable",
        f"  time to claim p50 {duration_text(h['time_to_claim_seconds']['p50'])}, p90 {duration_text(h['time_to_claim_seconds']['p90'])}; "
        f"to first moderator reply p50 {duration_text(h['time_to_first_moderator_reply_seconds']['p50'])}; "
        f"to resolve p50 {duration_text(h['time_to_resolve_seconds']['p50'])}",
        f"Privacy: {p['exports']} export(s), {p['erasures']} erasure(s) (p90 {duration_text(p['erasure_completion_seconds']['p90'])} to complete), "
        f"{p['privacy_off']} /privacy off, {p['turns_purged']} turn(s) purged by retention",
        f"  oldest stored turn: {p['oldest_turn'] or 'none'}"
        + (f" ({p['oldest_turn_age_days']:.1f} days; retention {p['retention_days']:g} days"
           f"{'' if p['oldest_turn_within_retention'] else ': PURGE OVERDUE'})" if p["oldest_turn"] else ""),
        f"Audit chain: {'intact' if c['intact'] else 'FAILED: ' + str(c['problem'])}, {c['records']} record(s), head {c['head']}",
    ]
    nlu = report.get("nlu_audit")
    if nlu:
        lines.append(f"NLU register audit: worst macro-F1 {nlu['worst']:.3f}, worst/best {nlu['worst_best_ratio']:.3f}")
    return "\n".join(lines)
