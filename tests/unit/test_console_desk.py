"""`bot chat`'s desk lines on the fake engine: `desk> MODERATOR_ID [#TICKET] TEXT` is a
moderator's action, parsed once; any other line is the fan's."""

from __future__ import annotations

import io

from bot.config import AssistantSettings, HandoffSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.handoff.actions import Claim
from bot.messages import Incoming
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.store import TranscriptStore
from bot.testing.fake_engine import FakeEngine
from connectors.console import ConsoleConnector, desk_line, parse_desk_line
from connectors.launch import ConsoleDeskInput
from connectors.router import Router
from tests.conftest import TEST_KEY


def moderated_bot(store: TranscriptStore) -> Bot:
    return Bot(
        FakeEngine(), Pseudonymizer(TEST_KEY), AssistantSettings(), ConversationMemory(1800), store,
        handoff=HandoffSettings(moderators=("mod1",)),
    )


async def chat(bot: Bot, *lines: str) -> list[str]:
    out = io.StringIO()
    await ConsoleConnector(stdin=io.StringIO("".join(f"{line}\n" for line in lines)), stdout=out).run(bot)
    return [line for line in out.getvalue().splitlines() if not line.startswith(" ")]


def test_only_a_desk_prefix_makes_a_moderator_line() -> None:
    assert desk_line("desk> mod1 /claim Sam") == " mod1 /claim Sam"
    assert desk_line("  desk>mod1 hi") == "mod1 hi"
    for fan_line in ("desk is broken", "my desk> is here", "mod1 /claim Sam", "Desk> x", "/desk"):
        assert desk_line(fan_line) is None
    action = parse_desk_line(" mod1 #3 /claim Sam", ("mod1",))
    assert action is not None and (action.moderator_id, action.ticket, action.action, action.authorised) == ("mod1", 3, Claim("Sam"), True)
    assert parse_desk_line("mod1", ("mod1",)) is None and parse_desk_line("mod1 #x hi", ("mod1",)) is None


def test_bot_run_s_console_desk_takes_the_same_line_with_or_without_the_prefix() -> None:
    desk = ConsoleDeskInput(Router(), ("mod1",))
    assert desk.parse("desk> mod1 #2 hello") == desk.parse("mod1 #2 hello") == parse_desk_line("mod1 #2 hello", ("mod1",))


async def test_a_moderator_acts_in_bot_chat_and_the_fan_hears_a_person(store: TranscriptStore) -> None:
    printed = await chat(
        moderated_bot(store), "hello", "/human", "desk> mod1 /claim Sam", "desk> mod1 I can help", "desk> mod1 /resolve", "refund"
    )
    claimed = printed.index("[to moderators] You claimed ticket #1 as Sam.")
    assert printed[claimed + 1] == "[human moderator] Sam (human moderator): I can help"
    assert printed[claimed + 3] == "[to moderators] Ticket #1 resolved."
    assert printed[-1].startswith("[AI assistant]")  # back with the AI
    assert not any("fan: desk>" in line or "fan: mod1" in line for line in printed)


async def test_an_unlisted_moderator_is_refused_and_a_bad_line_explained(store: TranscriptStore) -> None:
    printed = await chat(moderated_bot(store), "hello", "/human", "desk> eve /claim", "desk> mod1")
    assert printed[-2] == "[to moderators] Only moderators can act on tickets."
    assert printed[-1].startswith("desk: expected desk> MODERATOR_ID [#TICKET] TEXT")


async def test_a_ticket_of_a_fan_on_another_platform_is_not_shown_as_this_fan_s(store: TranscriptStore) -> None:
    bot = moderated_bot(store)
    await bot.handle(Incoming("slack", "U1", "D1", "hello"))
    await bot.handle(Incoming("slack", "U1", "D1", "/human"))
    printed = await chat(bot, "desk> mod1 /claim Sam")
    assert printed == [
        "desk: not delivered: that fan is on slack, which `bot chat` does not serve",
        "[to moderators] You claimed ticket #1 as Sam.",
    ]
