"""The `bot` command as a user runs it: a real process, the real model, no terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import MODEL, REPO

pytestmark = pytest.mark.integration
SCRIPT = Path(__file__).parent / "scripts" / "conversation.jsonl"
CANARY = "canary-zebra-42"


def bot(*args: str, stdin: str = "", tmp_path: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env["BOT_SECRETS_DEV_KEYS_FILE"] = str(tmp_path / "dev-keys.env")
    env["BOT_STORE_URL"] = f"sqlite:///{tmp_path}/transcripts.db"
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", "--model", str(MODEL), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def replay_runs(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> list[subprocess.CompletedProcess[str]]:
    tmp = tmp_path_factory.mktemp("replay")
    return [bot("--log-level", "INFO", "replay", str(SCRIPT), tmp_path=tmp) for _ in range(2)]


def test_replay_output_is_json_lines_with_the_expected_kinds(replay_runs: list[subprocess.CompletedProcess[str]]) -> None:
    run = replay_runs[0]
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    by_user = lambda user: [line["kind"] for line in lines if line["user"] == user]  # noqa: E731
    assert by_user("ann") == ["disclosure", "answer", "answer", "answer", "explanation", "fallback", "fallback", "handoff_offer"]
    assert by_user("bob") == ["disclosure", "answer", "error", "erasure_confirm_request", "erasure_done", "disclosure", "answer"]
    assert by_user("mod1") == ["refused"]
    assert lines[2]["intent"] == "faq_playback" and isinstance(lines[2]["confidence"], float)


def test_replay_reports_the_malformed_line_by_number_and_goes_on(replay_runs: list[subprocess.CompletedProcess[str]]) -> None:
    run = replay_runs[0]
    assert run.returncode == 1
    assert "line 6:" in run.stderr and "invalid JSON" in run.stderr


def test_replay_is_deterministic(replay_runs: list[subprocess.CompletedProcess[str]]) -> None:
    assert replay_runs[0].stdout == replay_runs[1].stdout


def test_logs_carry_no_message_text_or_ids_at_info(replay_runs: list[subprocess.CompletedProcess[str]]) -> None:
    for run in replay_runs:
        assert CANARY not in run.stderr and "buffering" not in run.stderr and "ann" not in run.stderr.split()


def test_a_handoff_through_the_real_model_and_a_real_process(trained_model: Path, tmp_path: Path) -> None:
    script = Path(__file__).parent / "scripts" / "handoff.jsonl"
    run = bot("replay", str(script), tmp_path=tmp_path, extra_env={"BOT_HANDOFF_MODERATORS": "mod1"})
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(line["to"], line["user"], line["kind"]) for line in lines] == [
        ("user", "ann", "disclosure"),
        ("user", "ann", "answer"),
        ("user", "ann", "handoff_started"),
        ("desk", "ann", "handoff_ticket"),
        ("desk", "ann", "handoff_relay"),
        ("desk", "eve", "refused"),
        ("user", "ann", "moderator_joined"),
        ("desk", "mod1", "moderator_joined"),
        ("user", "ann", "moderator_reply"),
        ("user", "ann", "handoff_resolved"),
        ("desk", "mod1", "handoff_resolved"),
        ("user", "ann", "answer"),
    ]
    assert lines[1]["intent"] == "faq_merch" and lines[-1]["intent"] == "thanks"
    assert "ann@example.com" in lines[4]["text"]  # the live relay is what the fan wrote, to the person they asked for
    assert "ann@example.com" not in lines[3]["text"]


def test_chat_without_a_terminal_discloses_first_and_exits_0_at_end_of_input(trained_model: Path, tmp_path: Path) -> None:
    run = bot("chat", stdin="hello\nare you human?\n", tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("[AI assistant] Hi!") and "not a human" in lines[0]
    assert all(line.startswith("[AI assistant]") for line in lines)
    assert "generated local development keys" in run.stderr
    assert oct((tmp_path / "dev-keys.env").stat().st_mode & 0o777) == "0o600"


def test_missing_model_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    run = subprocess.run(
        [sys.executable, "-m", "bot", "--model", str(tmp_path / "none.tar.gz"), "chat"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
        env={**env, "BOT_SECRETS_DEV_KEYS_FILE": str(tmp_path / "keys.env"), "BOT_STORE_URL": f"sqlite:///{tmp_path}/t.db"},
    )
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "bot train" in run.stderr


def test_a_replay_is_byte_identical_on_one_clock_and_its_report_shows_it(trained_model: Path, tmp_path: Path) -> None:
    """QA 17, item 5: turns, conversations, tickets, events, ratings and consent all on the
    replay's clock (one second per line): the same script twice gives the same bytes, /my-data
    (every stored timestamp) included, and `bot report` with its default period shows the replay."""
    script = tmp_path / "month.jsonl"
    lines = [
        {"user": "ann", "text": "how do I reset my password"},
        {"user": "ann", "text": "/feedback good"},
        {"user": "ann", "text": "/human"},
        {"moderator": "mod1", "ticket": "last", "text": "/claim Alex"},
        {"moderator": "mod1", "ticket": "last", "text": "Hi, a person here."},
        {"moderator": "mod1", "ticket": "last", "text": "/resolve"},
        {"user": "bob", "text": "hello"},
        {"user": "bob", "text": "/privacy off"},
        {"user": "ann", "text": "/my-data"},
    ]
    script.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    env = {"BOT_HANDOFF_MODERATORS": "mod1", "BOT_SECRETS_DEV_KEYS_FILE": str(tmp_path / "keys.env")}
    runs = []
    for n in (1, 2):  # two stores, one set of keys
        runs.append(bot("replay", str(script), "--store-url", f"sqlite:///{tmp_path}/r{n}.db", tmp_path=tmp_path, extra_env=env))
        assert runs[-1].returncode == 0, runs[-1].stderr
    assert runs[0].stdout == runs[1].stdout
    export = json.loads(json.loads(runs[0].stdout.splitlines()[-1])["text"])
    assert export["ratings"][0]["at"].startswith("2026-01-01T00:00:02") and export["events"][0]["at"].startswith("2026-01-01T00:00:01")

    report = tmp_path / "report.json"
    shown = bot("report", "--json", str(report), tmp_path=tmp_path, extra_env={**env, "BOT_STORE_URL": f"sqlite:///{tmp_path}/r1.db"})
    assert shown.returncode == 0, shown.stderr
    figures = json.loads(report.read_text(encoding="utf-8"))
    assert figures["period"]["until"] == "2026-01-01T00:00:09Z"  # the replay's last line
    assert figures["disclosure"]["coverage"] == 1.0 and figures["disclosure"]["conversations"] == 1  # bob keeps no transcript
    handoffs = figures["handoffs"]
    assert (handoffs["opened"], handoffs["claimed"], handoffs["resolved"]) == (1, 1, 1)
    assert handoffs["time_to_claim_seconds"]["p50"] == 1.0 and handoffs["time_to_resolve_seconds"]["p50"] == 3.0  # lines apart
    assert (figures["privacy"]["exports"], figures["privacy"]["privacy_off"], figures["answers"]["ratings"]["good"]) == (1, 1, 1)
