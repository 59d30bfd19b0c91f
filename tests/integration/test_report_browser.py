"""`bot report --html` in a real headless Chromium: the page renders, every chart decodes, and
the page makes no network request (every request the browser saw is the file itself or a
`data:` image). `bot report --json` against docs/report.schema.json."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from matplotlib.image import imread

from bot.cli import main
from bot.privacy import events as ev
from bot.privacy.crypto import MasterKeys
from bot.privacy.store import TranscriptStore
from tests.integration import chromium
from tests.integration.conftest import REPO

KEY = "report-browser-test-pseudonym-key-0123456789abcdef"
SCHEMA = REPO / "docs" / "report.schema.json"
#: Each image decoded by the browser: its natural size, or [0, 0] when it does not decode.
CHECK = """
Promise.all(Array.from(document.images).map(i => i.decode().then(() => [i.naturalWidth, i.naturalHeight], () => [0, 0])))
  .then(sizes => ({sizes, title: document.title, heading: document.querySelector('h1').textContent,
                   text: document.body.innerText}))
"""


@pytest.fixture
def browser() -> None:
    if not chromium.available():
        if os.environ.get("CI"):
            pytest.fail(f"{chromium.CHROMIUM} is missing: .ci/run installs Debian's chromium package")
        pytest.skip(f"no Chromium at {chromium.CHROMIUM}: `apt-get install chromium` (.ci/run does) to run the browser check")


def populate(url: str, masters: str) -> None:
    """A month of events as the running bot records them (`bot.privacy.events`)."""
    store = TranscriptStore.open(url, None, MasterKeys.parse(masters), KEY.encode())
    now = time.time()
    with store.engine.begin() as connection:
        for day in range(30):
            at = now - (30 - day) * 86400
            for n in range(3 + day % 4):
                session = ev.conversation_id(f"conversation-{day}-{n}", at)
                ev.add(connection, ev.REPLY, at + n, platform="slack", conversation=session, reason="disclosure")
                ev.add(connection, ev.REPLY, at + n, platform="slack", conversation=session, reason="answer",
                       intent=("faq_season", "greet", "faq_tickets")[n % 3], confidence=0.5 + 0.1 * (n % 5))
                ev.add(connection, ev.REPLY, at + n + 5, platform="slack", conversation=session, reason="fallback",
                       intent="nlu_fallback", confidence=0.2)
            ev.add(connection, ev.HANDOFF_OPENED, at, platform="discord", reason="asked")
            ev.add(connection, ev.HANDOFF_CLAIMED, at + 60 * (day + 1), platform="discord", reason="asked", seconds=60.0 * (day + 1))
            ev.add(connection, ev.HANDOFF_RESOLVED, at + 900, platform="discord", reason="asked", seconds=900.0)
        ev.add(connection, ev.ERASURE, now - 100, reason="fan", seconds=0.4)
        ev.add(connection, ev.EXPORT, now - 50, reason="fan")
    asyncio.run(store.aclose())


@pytest.fixture
def populated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A populated SQLite store that `bot report` (`main`) finds through the environment."""
    masters = MasterKeys.generate()
    url = f"sqlite:///{tmp_path}/transcripts.db"
    populate(url, masters)
    monkeypatch.setenv("BOT_STORE_URL", url)
    monkeypatch.setenv("BOT_PSEUDONYM_KEY", KEY)
    monkeypatch.setenv("BOT_MASTER_KEYS", masters)


def test_the_html_report_renders_in_chromium_with_decoded_charts_and_no_network_request(
    browser: None, populated: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page, figures = tmp_path / "report.html", tmp_path / "report.json"
    assert main(["report", "--since", "30", "--html", str(page), "--json", str(figures)]) == 0
    assert "AI disclosure first: 100.0 %" in capsys.readouterr().out

    validate = "import json, sys, jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))"
    checked = subprocess.run(  # jsonschema comes with Rasa's environment
        [str(REPO / "rasa_project" / ".venv" / "bin" / "python"), "-c", validate, str(figures), str(SCHEMA)],
        capture_output=True, text=True,
    )
    assert checked.returncode == 0, checked.stderr[-2000:]

    html = page.read_text(encoding="utf-8")
    assert "http://" not in html and "https://" not in html  # nothing to fetch, even were the policy ignored
    assert "default-src 'none'" in html
    visit = asyncio.run(chromium.visit(page, CHECK, tmp_path / "profile"))

    assert visit.value["heading"] == "Fan assistant: accountability report"
    assert "100.0 % of" in visit.value["text"]
    sizes = visit.value["sizes"]
    assert len(sizes) == html.count("<img ") == 5
    assert all(width > 0 and height > 0 for width, height in sizes), sizes
    assert visit.requests and {urlparse(u).scheme for u in visit.requests} <= {"file", "data"}, visit.requests
    pixels = imread(io.BytesIO(visit.screenshot), format="png")
    assert pixels.shape[0] > 100 and pixels.std() > 0.05  # a rendered page, not a blank one
    if os.environ.get("REPORT_SCREENSHOT"):
        Path(os.environ["REPORT_SCREENSHOT"]).write_bytes(visit.screenshot)


def test_report_refuses_what_the_operator_can_fix_in_one_line(
    populated: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "nlu.json").write_text("{}", encoding="utf-8")
    for args, said in (
        (["--since", "0"], "--since 0: give a number of days above 0"),
        (["--since", "inf"], "--since inf: give a number of days above 0 and at most 36,500"),
        (["--since", "1e9"], "--since 1e+09: give a number of days"),
        (["--since", "1e400"], "--since inf: give a number of days"),
        (["--since", "nan"], "--since nan: give a number of days"),
        (["--nlu", str(tmp_path / "nlu.json")], "not a `bot audit nlu --json` result"),
        (["--html", str(tmp_path / "missing" / "r.html")], "cannot write"),
    ):
        assert main(["report", *args]) == 2
        err = capsys.readouterr().err
        assert said in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("saved", [
    '{"worst": "x", "worst_best_ratio": 1, "macro_f1": {}}', '{"worst": 0.5, "worst_best_ratio": 1, "macro_f1": [1]}',
    '{"worst": 0.5, "worst_best_ratio": 1, "macro_f1": {"en": "x"}}', '{"worst": null, "worst_best_ratio": 1, "macro_f1": {}}',
    '{"worst": true, "worst_best_ratio": 1, "macro_f1": {}}', '{"worst": NaN, "worst_best_ratio": 1, "macro_f1": {}}',
    '[1, 2]', '"text"', '{"worst": 0.5, "macro_f1": {"en": 0.5}}',
    '{"worst": 1' + '0' * 400 + ', "worst_best_ratio": 0.9, "macro_f1": {"a": 0.5}}',  # past a float's range
    '{"worst": 0.5, "worst_best_ratio": 0.9, "macro_f1": {"a": 1' + '0' * 400 + '}}',
])
def test_report_refuses_an_nlu_result_of_the_wrong_types_in_one_line(
    saved: str, populated: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Well-formed JSON that is not what `bot audit nlu --json` writes: one line, exit 2, no traceback."""
    (tmp_path / "nlu.json").write_text(saved, encoding="utf-8")
    assert main(["report", "--nlu", str(tmp_path / "nlu.json"), "--html", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert "not a `bot audit nlu --json` result" in err and len(err.strip().splitlines()) == 1, err
