"""`bot report --html`: one self-contained page an operator can mail to the data-protection officer.

Charts are drawn by matplotlib's Agg canvas (no display, no pyplot global state) from the
report's own figures and embedded as base64 PNG `data:` images. The page loads nothing:
its Content-Security-Policy allows only inline styles and `data:` images, and it holds no
http(s) reference (tests/integration/test_report_browser.py opens it in Chromium).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from datetime import date
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import date2num
from matplotlib.figure import Figure

from bot.report import CONFIDENCE_BINS, duration_text, percent_text

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .5em 0; } td, th { padding: .2em .8em; border-bottom: 1px solid #eee; text-align: left; }
td.n { text-align: right; } .bad { color: #a00; font-weight: bold; } .ok { color: #070; font-weight: bold; } .none { color: #555; }
figure { margin: 1em 0; } img { max-width: 100%; } .hash { font-family: monospace; word-break: break-all; }
"""
TOP_INTENTS = 12


def _png(draw: Callable[[Axes], None], height: float = 3.0) -> str:
    figure = Figure(figsize=(8, height), dpi=80)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    draw(axes)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _empty(axes: Axes) -> None:
    axes.text(0.5, 0.5, "no data in this period", ha="center", va="center", transform=axes.transAxes)
    axes.set_axis_off()


def _day_number(day: date) -> float:
    """A date as matplotlib's date axis counts it (days since its epoch; `date2num` is untyped)."""
    return float(date2num(day))  # type: ignore[no-untyped-call]


def per_day_chart(report: dict[str, Any]) -> Callable[[Axes], None]:
    """Assistant messages per UTC day on a date axis spanning the whole period: a day without
    any (`per_day` lists only days with messages) is a visible gap, so an outage shows, rather
    than the bars of the days around it standing side by side."""
    days = report["replies"]["per_day"]
    since, until = (date.fromisoformat(report["period"][end][:10]) for end in ("since", "until"))

    def draw(axes: Axes) -> None:
        if not days:
            return _empty(axes)
        axes.bar([_day_number(date.fromisoformat(d)) for d in days], list(days.values()), width=0.8, color="#4477aa")
        axes.set_xlim(_day_number(since) - 0.5, _day_number(until) + 0.5)
        axes.xaxis_date()  # matplotlib's date axis: ticks and labels are dates, one unit a day
        axes.set_ylabel("assistant messages")
        axes.tick_params(axis="x", labelsize=8)

    return draw


def _intents(report: dict[str, Any]) -> Callable[[Axes], None]:
    rows = report["answers"]["by_intent"][:TOP_INTENTS][::-1]

    def draw(axes: Axes) -> None:
        if not rows:
            return _empty(axes)
        names = [r["intent"] for r in rows]
        answers = [r["answers"] for r in rows]
        axes.barh(names, answers, color="#4477aa", label="answered")
        axes.barh(names, [r["fallbacks"] for r in rows], left=answers, color="#ee6677", label="fallback")
        axes.set_xlabel("replies")
        axes.legend(loc="lower right")
        axes.tick_params(axis="y", labelsize=8)

    return draw


def _confidence(report: dict[str, Any]) -> Callable[[Axes], None]:
    histogram = report["answers"]["confidence_histogram"]

    def draw(axes: Axes) -> None:
        if not any(sum(v) for v in histogram.values()):
            return _empty(axes)
        edges = [i / CONFIDENCE_BINS for i in range(CONFIDENCE_BINS)]
        width = 1 / CONFIDENCE_BINS
        axes.bar(edges, histogram["answer"], width=width, align="edge", color="#4477aa", label="answered")
        axes.bar(edges, histogram["fallback"], width=width, align="edge", bottom=histogram["answer"], color="#ee6677", label="fallback")
        axes.set_xlabel("model confidence")
        axes.set_ylabel("replies")
        axes.legend()

    return draw


def _helpful(report: dict[str, Any]) -> Callable[[Axes], None]:
    rows = [r for r in report["answers"]["by_intent"] if r["helpful_rate"] is not None][:TOP_INTENTS][::-1]

    def draw(axes: Axes) -> None:
        if not rows:
            return _empty(axes)
        axes.barh([r["intent"] for r in rows], [r["helpful_rate"] * 100 for r in rows], color="#228833")
        axes.set_xlim(0, 100)
        axes.set_xlabel("rated helpful (%)")
        axes.tick_params(axis="y", labelsize=8)

    return draw


def _waits(report: dict[str, Any]) -> Callable[[Axes], None]:
    h = report["handoffs"]
    steps = [("claim", h["time_to_claim_seconds"]), ("first reply", h["time_to_first_moderator_reply_seconds"]),
             ("resolve", h["time_to_resolve_seconds"])]

    def draw(axes: Axes) -> None:
        if not any(s["count"] for _, s in steps):
            return _empty(axes)
        names = [name for name, _ in steps]
        positions = list(range(len(steps)))
        axes.bar([p - 0.2 for p in positions], [(s["p50"] or 0) / 60 for _, s in steps], width=0.4, color="#4477aa", label="p50")
        axes.bar([p + 0.2 for p in positions], [(s["p90"] or 0) / 60 for _, s in steps], width=0.4, color="#ccbb44", label="p90")
        axes.set_xticks(positions, names)
        axes.set_ylabel("minutes since the ticket opened")
        axes.legend()

    return draw


def _table(rows: list[tuple[str, Any]]) -> str:
    return "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td class=n>{html.escape(str(v))}</td></tr>" for k, v in rows) + "</table>"


def _figure(title: str, png: str) -> str:
    return f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{png}"><figcaption>{html.escape(title)}</figcaption></figure>'


def render_html(report: dict[str, Any]) -> str:
    d, a, h, p, c = report["disclosure"], report["answers"], report["handoffs"], report["privacy"], report["audit_chain"]
    period = report["period"]
    coverage_ok = d["exceptions"] == 0
    disclosure = (  # nothing to judge is neither a success nor a failure
        "<p class=none>No conversations in this period: nothing to check.</p>" if not d["conversations"] else
        f"<p class=\"{'ok' if coverage_ok else 'bad'}\">{percent_text(d['coverage'])} of {d['conversations']} conversation(s) "
        f"began with the AI disclosure; {d['exceptions']} exception(s).</p>"
    )
    intents = "".join(
        f"<tr><td>{html.escape(r['intent'])}</td><td class=n>{r['answers']}</td><td class=n>{r['fallbacks']}</td>"
        f"<td class=n>{percent_text(r['fallback_rate'])}</td><td class=n>{'-' if r['confidence']['p50'] is None else format(r['confidence']['p50'], '.2f')}</td>"
        f"<td class=n>{r['ratings']['good']}/{r['ratings']['bad']}</td><td class=n>{percent_text(r['helpful_rate'])}</td></tr>"
        for r in a["by_intent"]
    )
    worst = "".join(
        f"<li>{html.escape(w['intent'])}: {percent_text(w['helpful_rate'])} helpful ({w['bad']} not helpful)</li>" for w in a["worst_rated"]
    ) or "<li>no answer was rated not helpful</li>"
    nlu = report.get("nlu_audit")
    nlu_html = (
        _table([(name, f"{score:.3f}") for name, score in nlu["macro_f1"].items()] + [("worst / best", f"{nlu['worst_best_ratio']:.3f}")])
        if nlu else "<p>Not included: run <code>bot audit nlu --json &gt; nlu.json</code> and pass <code>--nlu nlu.json</code>.</p>"
    )
    body = f"""
<h1>Fan assistant: accountability report</h1>
<p>{html.escape(period['since'])} to {html.escape(period['until'])} ({period['days']:g} days). Generated from stored metadata
only: no message was decrypted, and fans appear only as counts.</p>
<h2>AI disclosure</h2>
{disclosure}
<h2>Answers</h2>
{_table([("assistant messages", report['replies']['total']), ("answers", a['answers']), ("fallbacks", a['fallbacks']),
         ("fallback rate", percent_text(a['fallback_rate'])), ("rated helpful / not helpful", f"{a['ratings']['good']} / {a['ratings']['bad']}"),
         ("helpful rate", percent_text(a['helpful_rate']))])}
{_figure("Assistant messages per day (UTC)", _png(per_day_chart(report)))}
{_figure("Replies per intent (top 12)", _png(_intents(report), 3.6))}
{_figure("Model confidence of answers and fallbacks", _png(_confidence(report)))}
{_figure("Helpful rate per rated intent", _png(_helpful(report)))}
<p>Intents fans rate worst:</p><ul>{worst}</ul>
<table><tr><th>intent</th><th>answers</th><th>fallbacks</th><th>fallback rate</th><th>confidence p50</th><th>rated good/bad</th><th>helpful</th></tr>{intents}</table>
<h2>Handoffs to people</h2>
{_table([("opened", h['opened'])] + [(f"  reason: {k}", v) for k, v in h['by_reason'].items()] + [
    ("claimed", h['claimed']), ("time to claim p50 / p90", f"{duration_text(h['time_to_claim_seconds']['p50'])} / {duration_text(h['time_to_claim_seconds']['p90'])}"),
    ("time to first moderator reply p50 / p90", f"{duration_text(h['time_to_first_moderator_reply_seconds']['p50'])} / {duration_text(h['time_to_first_moderator_reply_seconds']['p90'])}"),
    ("resolved", h['resolved']), ("time to resolve p50 / p90", f"{duration_text(h['time_to_resolve_seconds']['p50'])} / {duration_text(h['time_to_resolve_seconds']['p90'])}"),
    ("claim timeouts", h['timeouts']), ("cancelled by the fan", h['cancelled']), ("fan unreachable", h['unreachable'])])}
{_figure("Handoff waits", _png(_waits(report)))}
<h2>Privacy</h2>
{_table([("data exports (/my-data, bot export)", p['exports']), ("erasures completed", p['erasures']),
         ("erasure completion p50 / p90", f"{duration_text(p['erasure_completion_seconds']['p50'])} / {duration_text(p['erasure_completion_seconds']['p90'])}"),
         ("/privacy off", p['privacy_off']), ("turns purged by retention", p['turns_purged']),
         ("oldest stored turn", p['oldest_turn'] or "none"), ("retention period (days)", f"{p['retention_days']:g}"),
         ("oldest turn within retention", {True: "yes", False: "NO: purge overdue", None: "-"}[p['oldest_turn_within_retention']])])}
<h2>Audit chain</h2>
<p class="{'ok' if c['intact'] else 'bad'}">{'Intact' if c['intact'] else 'FAILED: ' + html.escape(str(c['problem']))}: {c['records']} record(s).</p>
<p>Head hash (keep it; <code>bot audit verify --head HASH</code> later proves nothing before it changed):</p><p class=hash>{html.escape(c['head'])}</p>
<h2>NLU register audit</h2>
{nlu_html}
"""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="referrer" content="no-referrer">
<title>Fan assistant report {html.escape(period['since'][:10])} to {html.escape(period['until'][:10])}</title>
<style>{STYLE}</style></head>
<body>{body}</body></html>
"""
