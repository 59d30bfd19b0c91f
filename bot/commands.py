"""The fan's commands: parsed the same way on every connector, answered here.

Anything that starts with "/" is a command; it never reaches the model (Rasa would read
"/name" as an intent payload).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from bot.config import AssistantSettings
from bot.conversation import ConversationMemory, ConversationState, Explanation
from bot.engine import DialogueEngine
from bot.handoff.service import Handoff
from bot.messages import Address, Kind, Outgoing
from bot.privacy.store import TranscriptStore

#: Command -> the arguments it accepts ("" is the bare command).
COMMANDS: dict[str, tuple[str, ...]] = {
    "/human": ("", "cancel"),
    "/forget-me": ("", "confirm", "cancel"),
    "/my-data": ("",),
    "/privacy": ("", "on", "off"),
    "/why": ("",),
}
_ALIASES = {"/forget_me": "/forget-me", "/forgetme": "/forget-me", "/my_data": "/my-data", "/mydata": "/my-data"}


@dataclass(frozen=True)
class Sender:
    """Who wrote the message being handled: pseudonyms, and the address replies go to."""

    fan: str
    conversation: str
    address: Address
    first_contact: bool = False  # the AI disclosure goes out with this message's replies


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
        raise CommandError(f"{name} does not take {argument!r}. Use {options}.")
    return Command(name, argument)


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
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._memory = memory
        self._store = store
        self._retention_days = retention_days
        self._handoff = handoff

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
        return self.why(state)

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
        conversations = receipt.parts.get("conversations", 0)  # deleted with the rest, in one transaction
        total = receipt.records + dialogues
        tickets = f", {receipt.tickets} handoff ticket(s)" if receipt.tickets else ""
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
        return [
            Outgoing(
                Kind.ERASURE_DONE,
                f"Done: I erased {total} record(s) I held about you: your encryption key "
                f"({receipt.data_keys}), {receipt.turns} stored message(s), your privacy setting "
                f"({receipt.preferences}){tickets}, the AI model's in-memory history ({dialogues}) and the state of "
                f"{conversations} conversation(s).{desk} Copies in backups can no longer be decrypted without the "
                "erased key. Your next message starts afresh.",
            ),
            *self._handoff.erased(receipt.active_tickets),
        ]

    async def my_data(self, fan: str) -> list[Outgoing]:
        export = await self._store.export(fan)
        export["held_in_memory"] = {
            "dialogue_history": "your recent messages, kept by the AI model in memory only, "
            f"dropped after {self._idle_minutes()} idle minutes or on /forget-me",
        }
        return [Outgoing(Kind.DATA_EXPORT, json.dumps(export, indent=2, sort_keys=True, ensure_ascii=False))]

    async def privacy(self, fan: str, argument: str = "") -> list[Outgoing]:
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
        return [Outgoing(Kind.PRIVACY_NOTICE, privacy_notice(self._retention_days, self._idle_minutes(), logging_on))]

    def why(self, state: ConversationState) -> list[Outgoing]:
        last = state.last_answer
        if last is None:
            return [Outgoing(Kind.EXPLANATION, "There is no answer of mine to explain yet in this conversation.")]
        return [Outgoing(Kind.EXPLANATION, explain(last), intent=last.intent, confidence=last.confidence)]

    def _idle_minutes(self) -> str:
        return f"{self._memory.idle_seconds / 60:g}"


def privacy_notice(retention_days: float, idle_minutes: str, logging_on: bool) -> str:
    """The plain-language notice; every sentence must stay true to the code."""
    return "\n".join(
        [
            "What I keep: our messages, with personal details (e-mail addresses, phone and card numbers, "
            "IBANs, IP addresses, mentions, links with tokens, secrets) replaced by placeholders before storage, "
            "plus the time, and which question I understood and how sure I was. "
            "What I never keep: your name or display name, your platform id (a keyed pseudonym replaces it), "
            "and attachments.",
            f"How long: {retention_days:g} days, then it is deleted automatically. The AI model's own "
            f"working memory of our chat is never written to disk and is dropped after {idle_minutes} idle minutes.",
            "Protection: stored messages are encrypted with a key of your own, itself encrypted by the "
            "operator's master key. Each encrypted record carries the time it was written in readable form.",
            "Who can read it: the operator, and moderators only for a handoff you ask for with /human.",
            f"Transcript logging is {'on' if logging_on else 'off'} for you: /privacy off stops it, /privacy on resumes it. "
            "Even with logging off, a handoff keeps the messages between you and the moderator (redacted, encrypted) "
            "until the ticket closes, then deletes them; the ticket's times, reason and the moderator's display name "
            f"are kept for {retention_days:g} days.",
            "/my-data shows everything stored about you, tickets included; /forget-me erases it for good.",
        ]
    )


def explain(last: Explanation) -> str:
    """Plain words for `/why`: what was understood, how sure, and that it was automated."""
    automated = "The answer was chosen automatically by the AI assistant; no person was involved."
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
