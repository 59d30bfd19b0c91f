"""The fan's commands: parsed the same way on every connector, answered here.

Anything that starts with "/" is a command; it never reaches the model (Rasa would read
"/name" as an intent payload).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Optional

from bot import consent as consent_texts
from bot.config import AssistantSettings
from bot.consent import Consent
from bot.conversation import ConversationMemory, ConversationState, Explanation
from bot.engine import DialogueEngine
from bot.feedback import Feedback
from bot.handoff.service import Handoff
from bot.messages import Address, Kind, Outgoing
from bot.privacy.notice import PrivacyNotice
from bot.privacy.store import TranscriptStore

#: Command -> the arguments it accepts ("" is the bare command).
COMMANDS: dict[str, tuple[str, ...]] = {
    "/human": ("", "cancel"),
    "/forget-me": ("", "confirm", "cancel"),
    "/my-data": ("",),
    "/privacy": ("", "on", "off"),
    "/why": ("",),
    "/feedback": ("good", "bad"),
}
#: What a command that needs an argument does, for the line shown when it comes without one.
_PURPOSE = {"/feedback": "it rates my last answer"}
_ALIASES = {"/forget_me": "/forget-me", "/forgetme": "/forget-me", "/my_data": "/my-data", "/mydata": "/my-data"}


@dataclass(frozen=True)
class Sender:
    """Who wrote the message being handled: pseudonyms, and the address replies go to."""

    fan: str
    conversation: str
    address: Address
    first_contact: bool = False  # the AI disclosure goes out with this message's replies
    #: Opt-in: the consent question was asked in this process and no answer is recorded yet.
    consent_open: bool = False


@dataclass(frozen=True)
class Command:
    name: str
    argument: str = ""


class CommandError(ValueError):
    """An unknown command or argument; the message is the fan-facing one-line error."""


def is_command(text: str) -> bool:
    return text.lstrip().startswith("/")


def parse_command(text: str) -> Command:
    words = text.split()
    name = _ALIASES.get(words[0].lower(), words[0].lower()) if words else "/"
    if name not in COMMANDS:
        raise CommandError(f"Unknown command {words[0] if words else '/'}. Commands: {', '.join(COMMANDS)}.")
    argument = " ".join(words[1:]).lower()
    allowed = COMMANDS[name]
    if argument not in allowed:
        options = " or ".join(f"{name} {a}".strip() for a in allowed)
        if not argument:  # a bare command that needs an argument: say how to use it, not what it "does not take"
            raise CommandError(f"Use {options}: {_PURPOSE.get(name, 'it needs one of these')}.")
        raise CommandError(f"{name} does not take {argument!r}. Use {options}.")
    return Command(name, argument)


async def _nothing() -> None:
    return None


class CommandHandlers:
    """Answers the fan's commands."""

    def __init__(
        self,
        settings: AssistantSettings,
        engine: DialogueEngine,
        memory: ConversationMemory,
        store: TranscriptStore,
        retention_days: float,
        handoff: Handoff,
        notice: PrivacyNotice,
        consent: Consent,
        feedback: Feedback,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._memory = memory
        self._store = store
        self._retention_days = retention_days
        self._handoff = handoff
        self._notice = notice
        self._consent = consent
        self._feedback = feedback
        #: Awaited before an export reads the store: the reply events still buffered in
        #: memory (`bot.privacy.events.EventLog`) are written first, so `/my-data` holds them.
        self.before_export: Callable[[], Awaitable[None]] = _nothing

    async def run(self, command: Command, sender: Sender, state: ConversationState) -> list[Outgoing]:
        fan = sender.fan
        if command.name == "/human":
            return await self.human(sender, command.argument)
        if command.name == "/forget-me":
            return await self.forget_me(command.argument, fan, state)
        if command.name == "/my-data":
            return await self.my_data(fan)
        if command.name == "/privacy":
            return await self.privacy(fan, command.argument)
        if command.name == "/feedback":
            last = state.last_answer
            token = last.rate if last is not None and last.source == "model" else None
            # The last reply was a fallback or a fixed one: say so, rather than "no answer yet"
            # (an earlier answer's rating would be a guess at what the fan meant).
            return await self.rate(sender, state.started, token, command.argument, unratable=last is not None and token is None)
        return self.why(state)

    async def rate(self, sender: Sender, started: float, token: Optional[str], rating: str, unratable: bool = False) -> list[Outgoing]:
        """A rating of one answer (`/feedback`, or a button whose token the connector passes)
        in the conversation as it is now (begun at `started`); `unratable`: without a token
        because the last reply was not a model answer."""
        return await self._feedback.rate(
            sender.fan, sender.conversation, started, sender.address.platform, token, rating,
            lambda: self.storage_refusal(sender.fan), unratable=unratable,
        )

    async def storage_refusal(self, fan: str) -> Optional[str]:
        """Why nothing more may be stored about the fan now: "consent" (opt-in, no yes yet),
        "off" (`/privacy off`), or None."""
        if self._consent.opt_in and await self._consent.choice(fan) != "yes":
            return "consent"
        return None if await self._store.logging_enabled(fan) else "off"

    async def consent_click(self, fan: str, yes: bool) -> list[Outgoing]:
        """A click on the consent question's Yes / No: the answer while none is recorded;
        after that, what is recorded and how to change it (an old button changes nothing)."""
        if not self._consent.opt_in:
            return [Outgoing(Kind.PRIVACY_NOTICE, consent_texts.NOT_ASKED_TEXT)]
        choice = await self._consent.choice(fan)
        if choice is None:
            return await self.consent(fan, yes)
        return [Outgoing(Kind.PRIVACY_NOTICE, consent_texts.recorded_text(choice))]

    async def consent(self, fan: str, yes: bool) -> list[Outgoing]:
        """The answer to the opt-in consent question (a yes/no, or `/privacy on|off`)."""
        await self._consent.record(fan, yes)
        await self._store.set_logging(fan, yes)
        return [Outgoing(Kind.PRIVACY_NOTICE, consent_texts.YES_TEXT if yes else consent_texts.NO_TEXT)]

    async def human(self, sender: Sender, argument: str = "", reason: str = "asked") -> list[Outgoing]:
        if argument == "cancel":
            return await self._handoff.cancel(sender.fan)
        return await self._handoff.start(sender.fan, sender.conversation, sender.address, reason, sender.first_contact)

    def ask_erasure(self, state: ConversationState, explicit_only: bool = False) -> list[Outgoing]:
        """Erasure is never done on a bare "yes": only on the explicit confirmation."""
        state.pending_erasure = True
        opening = (
            "To be sure it's what you want, I only erase on the explicit command."
            if explicit_only
            else "Do you want me to erase everything I hold about you? This cannot be undone."
        )
        return [
            Outgoing(
                Kind.ERASURE_CONFIRM_REQUEST,
                f"{opening} Type /forget-me confirm to erase, or /forget-me cancel to keep it.",
            )
        ]

    async def forget_me(self, argument: str, fan: str, state: ConversationState) -> list[Outgoing]:
        if argument == "":
            return self.ask_erasure(state)
        if argument == "cancel":
            state.pending_erasure = False
            return [Outgoing(Kind.PRIVACY_NOTICE, "OK, nothing was erased.")]
        receipt = await self._store.erase(fan)
        removal = await self._handoff.remove_desk_copies(receipt.desk_posts)
        dialogues = await self._engine.forget(fan)
        total = receipt.records + dialogues
        desk = ""
        if receipt.desk_posts:
            desk = (
                f" From the moderators' desk I deleted {removal.deleted} message(s) I had posted about your request(s); "
                "what the moderators wrote themselves there is theirs to delete."
            )
            if removal.edited:
                desk += f" {removal.edited} I could not delete, so I replaced their text with \"[erased at the fan's request]\"."
            if removal.failed:
                desk += (
                    f" {removal.failed} I could neither delete nor edit: they are still there; this was recorded "
                    "for the operator to remove."
                )
            if removal.pending:
                desk += f" {removal.pending} I could not reach just now (the desk did not answer): I will delete them as soon as it does."
        return [
            Outgoing(
                Kind.ERASURE_DONE,
                f"Done: I erased {total} record(s) I held about you: {receipt.itemised()} and the AI model's "
                f"in-memory history ({dialogues}).{desk} Copies in backups can no longer be decrypted without the "
                "erased key. Your next message starts afresh.",
            ),
            *self._handoff.erased(receipt.active_tickets),
        ]

    async def my_data(self, fan: str) -> list[Outgoing]:
        await self.before_export()
        export = self._notice.access(await self._store.export(fan), live=True)  # the same facts as `bot export`
        return [Outgoing(Kind.DATA_EXPORT, json.dumps(export, indent=2, sort_keys=True, ensure_ascii=False))]

    async def privacy(self, fan: str, argument: str = "") -> list[Outgoing]:
        if argument in ("on", "off") and self._consent.opt_in:
            return await self.consent(fan, argument == "on")
        if argument in ("on", "off"):
            await self._store.set_logging(fan, argument == "on")
            if argument == "off":
                text = (
                    "Transcript logging is off for you: from now on I keep none of your conversation with me. "
                    "One exception: while you talk with a human moderator (/human), the messages between you and "
                    "the moderator are kept, redacted and encrypted, so the moderator can follow the conversation; "
                    "they are deleted as soon as the ticket closes. The ticket itself (when it was opened, claimed and "
                    f"closed, why, and the moderator's display name) is kept for {self._retention_days:g} days. "
                    "What was stored before stays until it expires or you type /forget-me. /privacy on resumes logging."
                )
            else:
                text = "Transcript logging is on again: I keep minimized, encrypted copies of our messages."
            return [Outgoing(Kind.PRIVACY_NOTICE, text)]
        logging_on = await self._store.logging_enabled(fan)
        choice = await self._consent.choice(fan) if self._consent.opt_in else None
        return [Outgoing(Kind.PRIVACY_NOTICE, self._notice.text(logging_on, choice))]

    def why(self, state: ConversationState) -> list[Outgoing]:
        last = state.last_answer
        if last is None:
            return [Outgoing(Kind.EXPLANATION, "There is no answer of mine to explain yet in this conversation.")]
        return [Outgoing(Kind.EXPLANATION, explain(last), intent=last.intent, confidence=last.confidence)]


def explain(last: Explanation) -> str:
    """Plain words for `/why`: what was understood, how sure, and that it was automated."""
    automated = "The answer was chosen automatically by the AI assistant; no person was involved."
    language = (last.intent or "").removeprefix("language_") if (last.intent or "").startswith("language_") else None
    if last.source == "guard" and language:  # bot.language's guard, not the bot question
        return (f"Your message looked written in a language I cannot read (detected: {language}), "
                f"so a fixed rule said so instead of guessing an answer. {automated}")
    if last.source == "guard":
        return f"You asked whether I'm a bot or a person, so a fixed rule answered truthfully that I'm an AI. {automated}"
    score = f" with confidence {last.confidence:.2f}" if last.confidence is not None else ""
    if last.source == "fallback":
        if last.guess:
            detail = f" My best guess was '{last.guess}'{score}, too low to rely on."
        elif last.intent and last.intent != "nlu_fallback":
            detail = f" I understood it as '{last.intent}'{score}, which I have no answer for."
        else:
            detail = ""
        return f"I wasn't confident enough to answer.{detail} {automated}"
    return f"I understood your message as '{last.intent}'{score} and answered with the reply for that. {automated}"
