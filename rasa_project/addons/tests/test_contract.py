"""The model server's contract (docs/model-server.md) against a real `rasa run` serving the
real trained model: what the bot's HTTP client relies on."""

from __future__ import annotations

import subprocess
from typing import Any, Optional

import pytest
import yaml

from addons.tests.conftest import PROJECT, Server, free_port, server_command, server_environment
from addons.vocabulary import labelled_examples


def _domain_reply(intent: str) -> str:
    domain = yaml.safe_load((PROJECT / "domain.yml").read_text())
    return str(domain["responses"][f"utter_{intent}"][0]["text"])


def _example(intent: str) -> str:
    return next(text for name, text in labelled_examples(PROJECT / "data") if name == intent)


def _well_formed(reply: dict[str, Any]) -> None:
    assert set(reply) == {"texts", "intent", "confidence", "guess", "ranking"}
    ranking = reply["ranking"]
    assert 0 < len(ranking) <= 10
    scores = [entry["confidence"] for entry in ranking]
    assert scores == sorted(scores, reverse=True)
    assert all(set(entry) == {"name", "confidence"} and 0.0 <= entry["confidence"] <= 1.0 for entry in ranking)
    assert "nlu_fallback" not in [entry["name"] for entry in ranking]


def test_health_says_ok_once_ready_without_a_token(server: Server) -> None:
    assert server.request("GET", "", token=None) == (200, {"status": "ok"})


def test_a_greeting_gets_the_greeting_its_intent_and_the_ranking(server: Server) -> None:
    status, reply = server.request("POST", "message", {"sender": "contract-greet", "text": "hello there"})
    assert status == 200
    _well_formed(reply)
    assert reply["texts"] == [_domain_reply("greet")]
    assert reply["intent"] == "greet" and reply["guess"] is None
    assert reply["ranking"][0] == {"name": "greet", "confidence": reply["confidence"]}
    assert 0.5 < reply["confidence"] <= 1.0


def test_a_release_schedule_question_from_the_training_data(server: Server) -> None:
    status, reply = server.request("POST", "message", {"sender": "contract-schedule", "text": _example("faq_schedule")})
    assert status == 200
    _well_formed(reply)
    assert reply["intent"] == "faq_schedule" and reply["texts"] == [_domain_reply("faq_schedule")]


def test_off_topic_text_the_classifier_is_sure_about_is_out_of_scope(server: Server) -> None:
    # The classifier alone says live events at ~0.9; the out-of-domain gate overrules it.
    status, reply = server.request("POST", "message", {"sender": "contract-off", "text": "how many people still live on greenland"})
    assert status == 200
    _well_formed(reply)
    assert reply["intent"] == "out_of_scope" and reply["guess"] == "faq_live_events"


def test_text_with_no_word_the_model_knows_falls_back_with_a_guess(server: Server) -> None:
    status, reply = server.request("POST", "message", {"sender": "contract-gibberish", "text": "blorp zzkq"})
    assert status == 200
    _well_formed(reply)
    assert reply["intent"] == "nlu_fallback" and reply["guess"] is not None
    assert reply["texts"]  # the domain's fallback reply


def test_forget_drops_the_fans_tracker_once(server: Server) -> None:
    assert server.request("POST", "message", {"sender": "contract-forget", "text": "hi"})[0] == 200
    assert server.request("POST", "forget", {"sender": "contract-forget"}) == (200, {"dropped": 1})
    assert server.request("POST", "forget", {"sender": "contract-forget"}) == (200, {"dropped": 0})


def test_a_forgotten_fan_starts_a_new_dialogue(server: Server) -> None:
    # After forget the next message is the first of a new tracker (dropped again: 1).
    server.request("POST", "message", {"sender": "contract-again", "text": "hi"})
    server.request("POST", "forget", {"sender": "contract-again"})
    assert server.request("POST", "message", {"sender": "contract-again", "text": "hi"})[0] == 200
    assert server.request("POST", "forget", {"sender": "contract-again"}) == (200, {"dropped": 1})


@pytest.mark.parametrize("route", ["message", "forget"])
@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Bearer ", "Basic {token}", "{token}", "Bearer {token}x"])
def test_without_the_right_token_401_before_the_body_is_read(server: Server, route: str, header: Any) -> None:
    if header is None:
        status, reply = server.request("POST", route, raw=b"not json", token=None)
    else:  # the right secret under another scheme, or with more after it, is still refused
        status, reply = server.request("POST", route, raw=b"not json", authorization=header.format(token=server.token))
    assert status == 401 and set(reply) == {"error"}


BAD_MESSAGES = {
    "not json": b"{sender",
    "not utf-8": b"\xff\xfe\xfa",
    "not an object": b'["hello"]',
    "sender missing": b'{"text": "hi"}',
    "sender not a string": b'{"sender": 7, "text": "hi"}',
    "sender empty": b'{"sender": "", "text": "hi"}',
    "sender too long": ('{"sender": "%s", "text": "hi"}' % ("s" * 129)).encode(),
    "text missing": b'{"sender": "fan"}',
    "text not a string": b'{"sender": "fan", "text": ["hi"]}',
    "text too long": ('{"sender": "fan", "text": "%s"}' % ("a" * 20_001)).encode(),
}


@pytest.mark.parametrize("case", sorted(BAD_MESSAGES))
def test_bad_messages_get_400_with_an_error(server: Server, case: str) -> None:
    status, reply = server.request("POST", "message", raw=BAD_MESSAGES[case])
    assert status == 400 and set(reply) == {"error"} and reply["error"]


@pytest.mark.parametrize("body", [b"", b"null", b'{"text": "hi"}', b'{"sender": null}', b'{"sender": ""}'])
def test_bad_forget_requests_get_400(server: Server, body: bytes) -> None:
    status, reply = server.request("POST", "forget", raw=body)
    assert status == 400 and set(reply) == {"error"}


def test_the_limits_themselves_are_accepted(server: Server) -> None:
    sender = "s" * 128
    status, reply = server.request("POST", "message", {"sender": sender, "text": ("hello " * 3334)[:20_000]})
    assert status == 200
    _well_formed(reply)
    assert server.request("POST", "forget", {"sender": sender}) == (200, {"dropped": 1})


def test_the_logs_hold_no_message_text_no_sender_and_no_traceback(server: Server) -> None:
    sender, text = "pseudonym-9c41e7", "my zebracorn hoodie never arrived"
    assert server.request("POST", "message", {"sender": sender, "text": text})[0] == 200
    server.request("POST", "message", raw=b'{"sender": "pseudonym-9c41e7", "text": 5}')
    server.request("POST", "message", raw=b'{"sender": "pseudonym-9c41e7", "text": "zebracorn"}', token="wrong")
    assert server.request("POST", "forget", {"sender": sender}) == (200, {"dropped": 1})
    log = server.log()
    assert "zebracorn" not in log and sender not in log
    assert "Traceback" not in log
    assert "bad request" in log  # the one content-free line for the bad body


def test_without_a_token_the_server_refuses_to_start_in_one_line(trained_model: Any) -> None:
    completed = subprocess.run(
        server_command(free_port()), cwd=PROJECT, env=server_environment(BOT_ENGINE_TOKEN=None, BOT_ENGINE_TRACKER_IDLE_SECONDS="1800", PYTHONWARNINGS="ignore"),
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 2
    lines = [line for line in completed.stderr.splitlines() if "BOT_ENGINE_TOKEN" in line]
    assert len(lines) == 1 and "Traceback" not in completed.stderr


@pytest.mark.parametrize("idle", ["-5", "soon", "inf", None])
def test_a_bad_idle_limit_is_one_line_exit_2_and_no_traceback(trained_model: Any, idle: Optional[str]) -> None:
    completed = subprocess.run(
        server_command(free_port()), cwd=PROJECT,
        env=server_environment(BOT_ENGINE_TOKEN="t" * 24, BOT_ENGINE_TRACKER_IDLE_SECONDS=idle, PYTHONWARNINGS="ignore"),
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().count("\n") == 0 and "BOT_ENGINE_TRACKER_IDLE_SECONDS" in completed.stderr
