"""The policy: one readable pipeline from a fan's message to the assistant's replies.

Order matters and is the product's promise: pseudonymize first, commands before the
model, disclosure before any answer, guards that do not trust the model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Optional

from bot.commands import CommandError, CommandHandlers, Sender, is_command, parse_command
from bot.config import AssistantSettings, HandoffSettings, PrivacySettings
from bot.consent import AGAIN_TEXT as CONSENT_AGAIN_TEXT
from bot.consent import QUESTION_TEXT as CONSENT_QUESTION_TEXT
from bot.consent import Consent
from bot.conversation import ConversationMemory, ConversationState, Explanation
from bot.deliveries import DeliveryKeys
from bot.disclosure import bot_challenge_text, disclosure_text
from bot.engine import ARRIVED, FALLBACK_INTENT, DialogueEngine, EngineResult, EngineStarting, EngineUnavailable
from bot.feedback import Feedback
from bot.guards import about_elsewhere, asks_if_human, sounds_upset, unclear_answer, yes_or_no
from bot.handoff.actions import ModeratorAction
from bot.handoff.service import Handoff
from bot.language import foreign, unsupported_reply
from bot.locks import FanLocks
from bot.messages import Address, Incoming, Kind, Outgoing
from bot.metrics import METRICS
from bot.normalize import normalize
from bot.privacy.events import EventLog, epoch
from bot.privacy.notice import PrivacyNotice
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.store import StoreUnavailable, TranscriptStore
from bot.transcript import TranscriptWriter, minimized

logger = logging.getLogger(__name__)

#: Intents the model may recognise but the core answers itself, the same way as the command.
FALLBACK_INTENTS = frozenset({FALLBACK_INTENT, "out_of_scope"})
#: Answers after which a person is offered, with the reason the desk will see.
OFFER_AFTER = {"complaint": "complaint", "faq_report_harassment": "harassment"}
HANDOFF_OFFER_TEXT = (
    "Would you like me to hand this conversation to a human moderator? "
    "Say yes, or type /human at any time."
)
FALLBACK_TEXT = (
    "Sorry, I'm not sure I understood that, and I'd rather not guess: I'm an automated assistant. "
    "Try rephrasing, or type /human to reach a person."
)
STORE_DOWN_TEXT = (
    "Sorry, I can't reach my records right now, so I couldn't act on that. Please try again in a minute, "
    "or type /human to reach a person."
)
#: Intents whose words would act (open a ticket, send data, start an erasure) -> the action.
ACTION_INTENTS = {"human_handoff": "human", "forget_me": "forget_me", "my_data": "my_data", "privacy_info": "privacy"}
#: Words act only at or above this confidence; below it the assistant asks back. Chosen by
#: bench/nlu_eval.py (docs/benchmarks.md): held-out in-domain action phrasings score above it
#: far more often than the off-topic text that used to trigger actions.
ACTION_CONFIDENCE = 0.80
ASK_BACK_TEXT = {
    "human": "Do you want me to hand this to a person? Say yes or no (or type /human).",
    "forget_me": "Do you want to erase everything I hold about you? Say yes or no (or type /forget-me).",
    "my_data": "Do you want a copy of what I hold about you? Say yes or no (or type /my-data).",
    "privacy": "Do you want to know what I keep about you? Say yes or no (or type /privacy).",
}
ASK_AGAIN_TEXT = "Sorry, I didn't catch that. Please answer yes or no: "
DECLINED_TEXT = "OK, I won't. What else can I help you with? (/human reaches a person at any time.)"
NOTHING_PENDING_TEXT = "There's no question of mine waiting for an answer right now. What can I help you with?"
ENGINE_FAILURE_TEXT = "Sorry, something went wrong on my side and I can't answer right now. Type /human to reach a person."
ENGINE_STARTING_TEXT = (
    "I'm an automated assistant and I'm still starting up, so I can't answer that yet: try again in a minute. "
    "Type /human to reach a person; /privacy, /my-data and /forget-me already work."
)


@dataclass
class Exchange:
    """The replies to one message, and what of it may be kept."""

    replies: list[Outgoing]
    fan_text: Optional[str] = None  # set for conversation turns; commands are never kept
    erased: bool = False  # the fan was just erased: nothing about this message is written
    relayed: bool = False  # went to a human: no AI disclosure, the handoff kept it


class Bot:
    def __init__(
        self,
        engine: DialogueEngine,
        pseudonyms: Pseudonymizer,
        settings: AssistantSettings,
        memory: ConversationMemory,
        store: TranscriptStore,
        retention_days: float = 30.0,
        clock: Callable[[], datetime] = datetime.utcnow,
        handoff: HandoffSettings = HandoffSettings(),
        privacy: Optional[PrivacySettings] = None,
    ) -> None:
        self._engine = engine
        self._pseudonyms = pseudonyms
        self._settings = settings
        # One string for every fan: each new fan's disclosure turn is held in memory for the
        # conversation idle limit (recent turns), and a copy each was some 450 bytes a fan.
        self._disclosure = disclosure_text(settings)
        self._memory = memory
        memory.bind(store)
        self._handoff = Handoff(handoff, store, pseudonyms, clock)
        privacy = privacy or PrivacySettings(retention_days=retention_days)
        notice = PrivacyNotice(privacy, memory.idle_seconds / 60)
        #: The bot's clock in epoch seconds, for everything it timestamps that way (events,
        #: consent, ratings): one clock, so a replay is deterministic and its report coherent.
        self._epoch: Callable[[], float] = lambda: epoch(clock())
        self._consent = Consent(store, privacy.consent, notice.version, memory.idle_seconds, clock=self._epoch)
        self._feedback = Feedback(store, pseudonyms, clock=self._epoch)
        self._commands = CommandHandlers(
            settings, engine, memory, store, retention_days, self._handoff, notice, self._consent, self._feedback
        )
        self._store = store
        store.keep_recent(handoff.history_turns, memory.idle_seconds)  # handoff packets without a store read
        self._transcript = TranscriptWriter(store, clock)
        self.events = EventLog(store, clock=self._epoch)  # minimized events for `bot report` (bot.privacy.events)
        self._commands.before_export = self.events.drain  # /my-data holds the events still buffered
        self._locks = FanLocks(store.engine)
        store.when_erased_elsewhere(self._forget_erased_elsewhere)  # PostgreSQL notices (bot.privacy.notify)
        #: Deliveries already handled, shared by every process (the connectors ask it).
        self.deliveries = DeliveryKeys(store, pseudonyms.delivery)
        #: Disclosures out for delivery (handle(..., receipts=True)): (fan, conversation) -> when
        #: that conversation started. The delivery report comes back to this process.
        self._unconfirmed: dict[tuple[str, str], float] = {}

    @property
    def handoff(self) -> Handoff:
        return self._handoff

    async def handle(self, incoming: Incoming, max_chars: Optional[int] = None, *, receipts: bool = False) -> list[Outgoing]:
        """Everything the assistant sends in answer to one fan message, in order.

        `max_chars` is the connector's platform limit, when tighter than the configured one.
        With `receipts`, the caller reports each reply's fate (`delivered` / `undelivered`):
        the disclosure turn is then kept only once delivered, and a disclosure that never
        arrives goes out again with the next reply. Without, delivery cannot fail (console).
        """
        arrived = time.perf_counter()
        fan = self._pseudonyms.fan(incoming.platform, incoming.user_id)
        conversation = self._pseudonyms.conversation(incoming.platform, incoming.conversation_id, incoming.user_id)
        waited_since = ARRIVED.get()
        came = time.monotonic() if waited_since is None else waited_since  # when this message reached the process
        async with self._locks.hold(fan):  # across processes on PostgreSQL
            erased = self._store.erased_since(fan) if waited_since is not None else None  # commands are always answered
            if erased is not None and erased > came:
                # The fan erased everything while this message waited (bot.engine.ARRIVED):
                # it goes with the rest, rather than start new records after their erasure.
                logger.info("a message that waited while its fan was erased was dropped unanswered")
                return []
            await self._drop_if_erased_elsewhere(fan)
            consented = await self._consented(fan)
            stores = consented == "yes"  # opt-in: nothing is written before a yes
            held = None if stores else self._consent.held(fan, conversation)  # a withdrawn fan: stored state, read only
            state = held or await self._conversation(fan, conversation)
            earlier = self._consent.take_events(fan, conversation, state.started) if held else ()  # opt-in: before the yes
            first_contact = not state.disclosed
            state.disclosed = True
            sender = Sender(fan, conversation, incoming.address, first_contact, consented is None and self._consent.was_asked(fan))
            try:
                if self._store.broken:  # its file is gone: nothing done now would be kept or found again
                    raise StoreUnavailable("the store's file was removed or replaced")
                exchange = await self._reply(sender, state, incoming, max_chars)
            except StoreUnavailable:  # say so at once; the fan's message was not acted on
                logger.error("the store did not answer while handling a message")
                exchange = Exchange([Outgoing(Kind.ERROR, STORE_DOWN_TEXT)])
            replies = exchange.replies
            if first_contact and not exchange.relayed:
                replies.insert(0, Outgoing(Kind.DISCLOSURE, self._disclosure))
                if receipts and stores:
                    self._unconfirmed[(fan, conversation)] = state.started
            if exchange.erased:  # an erasure deleted the state too: nothing is written back
                self._consent.drop(fan)
                self._store.note_erased(fan, came)  # what came after the request is the fan's new start
            elif not stores and (choice := await self._consented(fan)) != "yes":  # kept in memory only
                if choice is None and not state.pending and self._consent.should_ask(fan):
                    state.ask_back = "consent"
                    replies.append(Outgoing(Kind.CONSENT_REQUEST, CONSENT_QUESTION_TEXT))
                self._consent.hold(fan, conversation, state)
                now = self.events.held(incoming.platform, fan, conversation, state.started, replies)
                if choice != "no":  # written with a yes; a no drops them
                    self._consent.hold_events(conversation, earlier + now)
            else:
                await self._remember(fan, conversation, state)
                kept = [r for r in replies if r.kind is not Kind.DISCLOSURE] if receipts else replies
                await self._transcript.record(fan, conversation, exchange.fan_text, incoming.attachments, kept)
                self.events.replies(incoming.platform, fan, conversation, state.started, replies, earlier)
            METRICS.replied(time.perf_counter() - arrived)
            return replies

    async def _consented(self, fan: str) -> Optional[str]:
        """"yes" when the fan's data may be stored (always under `consent = "notice"`), else
        their recorded "no", None (never asked), or "unknown" when the store does not answer."""
        if not self._consent.opt_in:
            return "yes"
        try:
            return await self._consent.choice(fan)
        except StoreUnavailable:
            return "unknown"

    async def rate(self, address: Address, token: str, rating: str) -> list[Outgoing]:
        """A click on "Helpful" / "Not helpful": `token` is the button's untrusted payload
        (`bot.feedback` checks it belongs to this fan and to this conversation as it is now:
        not one erased or expired since the answer)."""
        fan = self._pseudonyms.fan(address.platform, address.user_id)
        conversation = self._pseudonyms.conversation(address.platform, address.conversation_id, address.user_id)
        async with self._locks.hold(fan):  # never written after an erasure of the fan
            try:
                await self._drop_if_erased_elsewhere(fan)
                choice = await self._consented(fan)
                held = None if choice == "yes" else self._consent.held(fan, conversation)
                state = held or await self._memory.load(fan, conversation)  # read only: a click starts nothing
                replies = await self._commands.rate(Sender(fan, conversation, address), state.started, token, rating)
                self._count_replies(address.platform, fan, conversation, choice, held, state.started, replies)
                return replies
            except StoreUnavailable:
                logger.error("the store did not answer while recording a rating")
                return [Outgoing(Kind.ERROR, STORE_DOWN_TEXT)]

    def _count_replies(
        self, platform: str, fan: str, conversation: str, choice: Optional[str], held: Optional[ConversationState],
        started: float, replies: list[Outgoing],
    ) -> None:
        """A click's acknowledgement is a reply like any other (events, `/metrics`): written
        when the fan's data may be stored, held with the conversation under opt-in before the
        yes, counted only otherwise."""
        if choice == "yes":
            self.events.replies(platform, fan, conversation, started, replies)
        elif held is None or choice == "no":
            self.events.held(platform, fan, conversation, started, replies)  # counted, never written
        else:
            earlier = self._consent.take_events(fan, conversation, held.started)
            self._consent.hold_events(conversation, earlier + self.events.held(platform, fan, conversation, held.started, replies))

    async def _conversation(self, fan: str, conversation: str) -> ConversationState:
        """The conversation's shared state; a new one (a first contact: the disclosure goes
        out) when the database does not answer, rather than no reply."""
        try:
            return await self._memory.load(fan, conversation)
        except StoreUnavailable:
            return ConversationState(started=self._epoch())

    async def _remember(self, fan: str, conversation: str, state: ConversationState) -> None:
        try:
            await self._memory.save(fan, conversation, state)
        except StoreUnavailable:  # the reply still goes out; the next message starts afresh
            logger.warning("conversation state not saved: the database did not answer")

    async def delivered(self, address: Address, reply: Outgoing) -> None:
        """A reply reached the fan at `address`: a disclosure is kept as shown, as of now."""
        fan, conversation, started = self._unconfirmed_disclosure(address, reply)
        if started is not None:
            async with self._locks.hold(fan):
                if await self._memory.is_current(conversation, started):  # not erased or expired meanwhile
                    await self._transcript.record(fan, conversation, None, 0, [reply])

    async def undelivered(self, address: Address, reply: Outgoing) -> None:
        """A reply was given up on: after a lost disclosure the conversation is not disclosed,
        so the fan's next reply carries the disclosure again."""
        fan, conversation, started = self._unconfirmed_disclosure(address, reply)
        if started is not None:
            async with self._locks.hold(fan):  # a message of theirs being handled queues its replies first
                state = await self._memory.load(fan, conversation)
                if state.started == started and state.disclosed:
                    state.disclosed = False
                    await self._memory.save(fan, conversation, state)

    def _unconfirmed_disclosure(self, address: Address, reply: Outgoing) -> tuple[str, str, Optional[float]]:
        fan = self._pseudonyms.fan(address.platform, address.user_id)
        conversation = self._pseudonyms.conversation(address.platform, address.conversation_id, address.user_id)
        started = self._unconfirmed.pop((fan, conversation), None) if reply.kind is Kind.DISCLOSURE else None
        return fan, conversation, started

    async def moderate(self, action: ModeratorAction) -> list[Outgoing]:
        """A moderator's typed action at a desk (parsed and authorised by that desk); holds
        the fan's lock so it cannot race an erasure."""
        ticket = await self._handoff.find(action.ticket)
        if ticket is None:
            return await self._handoff.moderate(action)
        async with self._locks.hold(ticket.fan):
            return await self._handoff.moderate(replace(action, ticket=ticket.id))

    async def _drop_if_erased_elsewhere(self, fan: str) -> None:
        """`bot forget` in another process shredded the fan's key: this process drops what it
        still holds (the model tracker; tickets are read from the database), so the fan's next
        message starts afresh (a first contact with the disclosure, and a new key: the erasure
        deleted the conversation state rows) and nothing is written under the erased key."""
        try:
            erased = await self._store.erased_elsewhere(fan)
        except StoreUnavailable:
            return  # the message itself will meet the outage and say so
        if erased:
            logger.info("a fan was erased by another process; dropping this process's state of them")
            await self._engine.forget(fan)

    async def _forget_erased_elsewhere(self, fan: str) -> None:
        """Another process announced the fan's erasure (`/forget-me` or `bot forget`): the
        store has dropped its caches; this drops the model servers' tracker at once (tickets
        are read from the database: no process holds an index of them). The eraser's own `engine.forget` does not suffice: `bot
        forget` has no engine, and a worker may use model servers the eraser does not."""
        async with self._locks.hold(fan):
            logger.info("a fan was erased by another process; dropped this process's state of them")
            self._consent.drop(fan)  # opt-in state held in memory before consent
            await self._engine.forget(fan)

    async def expire_idle(self) -> int:
        """Sweeps conversation state idle past the limit and delivery keys past their time
        (a stale row is ignored when read anyway: this keeps the tables small). Call
        periodically; one process is enough. Returns the conversations swept."""
        try:
            await self.deliveries.sweep()
            return await self._memory.sweep()
        except StoreUnavailable:
            logger.warning("sweeping shared state skipped: the database did not answer")
            return 0

    async def release_idle(self) -> int:
        """Drops what this process holds in memory of fans idle past the conversation idle
        limit (the store's caches); every process calls it periodically (each holds its own),
        unlike `expire_idle`. Returns how many fans."""
        try:
            return await self._store.release_idle()
        except StoreUnavailable:
            return 0

    async def expire_handoffs(self) -> list[Outgoing]:
        """Claim-timeout notices due now; call periodically (and before each replay line)."""
        return await self._handoff.expire()

    async def drain(self) -> None:
        """Waits for queued transcript writes and erasures to reach the database (on shutdown,
        and in tests before reading the store directly)."""
        await self._transcript.drain()
        await self.events.drain()
        await self._store.settle()

    async def _reply(
        self, sender: Sender, state: ConversationState, incoming: Incoming, max_chars: Optional[int]
    ) -> Exchange:
        text = incoming.text.strip()
        limit = min(self._settings.max_message_chars, max_chars or self._settings.max_message_chars)
        if incoming.answers == "consent":  # the consent question's own button: never mistaken for another question
            if state.ask_back == "consent":
                state.clear_pending()
            return Exchange(await self._commands.consent_click(sender.fan, text == "yes"))
        if not normalize(text).strip():  # nothing but spaces or invisible characters (U+200B, U+FEFF...)
            what = "Attachments aren't something I can read" if incoming.attachments else "Your message was empty"
            return Exchange([Outgoing(Kind.ERROR, f"{what}: please send your question as text.")])
        if len(text) > limit:
            return Exchange([Outgoing(Kind.ERROR, f"Your message is {len(text)} characters long; I can read at most {limit}. Please shorten it.")])
        if is_command(text):
            try:
                command = parse_command(text)
            except CommandError as error:
                return Exchange([Outgoing(Kind.ERROR, str(error))])
            replies = await self._commands.run(command, sender, state)
            return Exchange(replies, erased=any(r.kind is Kind.ERASURE_DONE for r in replies))
        try:
            ticket = await self._handoff.active(sender.fan)
        except StoreUnavailable:  # with a person or not cannot be told: nobody answers, the words are kept (spooled)
            logger.error("the store did not answer while handling a message")
            return Exchange([Outgoing(Kind.ERROR, STORE_DOWN_TEXT)], fan_text=text)
        if ticket is not None:  # with a person now: the model does not answer
            return Exchange(await self._handoff.relay(ticket, text, incoming.attachments), relayed=True)
        return Exchange(await self._converse(sender, state, text), fan_text=text)

    async def _converse(self, sender: Sender, state: ConversationState, text: str) -> list[Outgoing]:
        fan = sender.fan
        text = normalize(text)
        if asks_if_human(text):
            state.consecutive_fallbacks = 0
            state.last_answer = Explanation("guard", "bot_challenge", None)
            return [Outgoing(Kind.ANSWER, bot_challenge_text(self._settings), intent="bot_challenge")]
        answer = yes_or_no(text) if state.pending or sender.consent_open else None
        if answer is not None:
            if not state.pending:  # the consent question lapsed: asked again rather than inferred
                return [self._consent_again(state)]
            return await self._resolve(sender, state, answer)
        if state.pending and unclear_answer(text):  # "maybe", "no, yes": never taken as either
            if not state.asked_again:
                state.asked_again = True
                return [self._question(state, again=True)]
            return await self._resolve(sender, state, False)  # twice unclear: nothing is done
        language = foreign(text, self._settings.languages)
        if language is not None:  # never a guessed answer to a language the model cannot read
            state.last_answer = Explanation("guard", f"language_{language}", None)
            return [Outgoing(Kind.FALLBACK, unsupported_reply(language, self._settings.languages), intent=f"language_{language}")]
        try:
            result = await self._engine.respond(fan, minimized(text))  # the model sees what the store keeps
        except EngineStarting:
            return [Outgoing(Kind.ERROR, ENGINE_STARTING_TEXT)]
        except EngineUnavailable as error:  # down, too slow or garbage: one line, the fan told at once
            METRICS.model_server_errors.inc()
            logger.warning("dialogue engine unavailable: %s", error)
            return [Outgoing(Kind.ERROR, ENGINE_FAILURE_TEXT)]
        except Exception:  # the model must never take the conversation down
            logger.exception("dialogue engine failed")
            return [Outgoing(Kind.ERROR, ENGINE_FAILURE_TEXT)]

        intent = result.intent
        if intent in ("affirm", "deny"):
            if state.pending:
                return await self._resolve(sender, state, intent == "affirm")
            if sender.consent_open:
                return [self._consent_again(state)]
            return [Outgoing(Kind.ANSWER, NOTHING_PENDING_TEXT, intent=intent, confidence=result.confidence)]
        if state.pending:
            if intent in FALLBACK_INTENTS or intent is None:
                if not state.asked_again and state.ask_back != "consent":  # unclear: ask once more (consent: asked once only)
                    state.asked_again = True
                    return [self._question(state, again=True)]
            state.clear_pending()  # the fan moved on (or twice unclear): the question lapses
        action = ACTION_INTENTS.get(intent or "")
        if action is not None:
            if about_elsewhere(text):  # another service's data, a device, a bank: not ours to act on, nor ask
                return self._fallback(state, result)
            if (result.confidence or 0.0) >= ACTION_CONFIDENCE:
                return await self._act(sender, state, action)
            state.ask_back = action
            state.last_answer = Explanation("fallback", None, result.confidence, intent)
            return [self._question(state)]
        if intent in FALLBACK_INTENTS or intent is None or not result.texts:
            return self._fallback(state, result)

        state.consecutive_fallbacks = 0
        rate = self._feedback.token(fan, sender.conversation, state.started, intent, result.confidence)  # the fan may rate it
        state.last_answer = Explanation("model", intent, result.confidence, rate=rate)
        texts = (bot_challenge_text(self._settings),) if intent == "bot_challenge" else result.texts
        replies = [Outgoing(Kind.ANSWER, t, intent=intent, confidence=result.confidence) for t in texts]
        replies[-1] = replace(replies[-1], rate=rate)
        if intent in OFFER_AFTER:
            replies.append(self._offer_handoff(state, OFFER_AFTER[intent]))
        elif sounds_upset(text) and intent.startswith("faq_"):  # a topic asked in anger: offer a person too
            replies.append(self._offer_handoff(state, "complaint"))
        return replies

    async def _act(self, sender: Sender, state: ConversationState, action: str) -> list[Outgoing]:
        state.clear_pending()
        if action == "human":
            return await self._commands.human(sender)
        if action == "forget_me":
            return self._commands.ask_erasure(state)
        if action == "my_data":
            return await self._commands.my_data(sender.fan)
        return await self._commands.privacy(sender.fan)

    async def _resolve(self, sender: Sender, state: ConversationState, yes: bool) -> list[Outgoing]:
        """A yes or no to the question that is pending (only called when one is)."""
        offered, erasure, action = state.handoff_offered, state.pending_erasure, state.ask_back
        state.clear_pending()
        if action == "consent":
            return await self._commands.consent(sender.fan, yes)
        if not yes:
            if erasure:
                return [Outgoing(Kind.PRIVACY_NOTICE, "OK, nothing was erased.")]
            return [Outgoing(Kind.ANSWER, DECLINED_TEXT, intent="deny")]
        if offered:
            return await self._commands.human(sender, reason=offered)
        if erasure:
            return self._commands.ask_erasure(state, explicit_only=True)  # never on a bare yes
        return await self._act(sender, state, action or "human")

    def _question(self, state: ConversationState, again: bool = False) -> Outgoing:
        """The pending yes/no question, (re)stated."""
        if state.pending_erasure:
            text, kind = "Type /forget-me confirm to erase, or /forget-me cancel to keep it.", Kind.ERASURE_CONFIRM_REQUEST
        elif state.handoff_offered:
            text, kind = ASK_BACK_TEXT["human"], Kind.HANDOFF_OFFER
        elif state.ask_back == "consent":
            text, kind = CONSENT_QUESTION_TEXT, Kind.CONSENT_REQUEST
        else:
            text, kind = ASK_BACK_TEXT[state.ask_back or "human"], Kind.ASK_BACK
        return Outgoing(kind, (ASK_AGAIN_TEXT + text) if again else text)

    def _consent_again(self, state: ConversationState) -> Outgoing:
        """A yes or no with no question pending while the consent question, asked earlier in
        this process, has no answer: it may have been meant for that one (`bot.consent`)."""
        state.clear_pending()
        state.ask_back = "consent"
        return Outgoing(Kind.CONSENT_REQUEST, CONSENT_AGAIN_TEXT + CONSENT_QUESTION_TEXT)

    def _fallback(self, state: ConversationState, result: EngineResult) -> list[Outgoing]:
        state.consecutive_fallbacks += 1
        state.last_answer = Explanation("fallback", result.intent, result.confidence, result.guess)
        replies = [Outgoing(Kind.FALLBACK, FALLBACK_TEXT, intent=result.intent, confidence=result.confidence)]
        if state.consecutive_fallbacks >= self._settings.fallbacks_before_offer:
            state.consecutive_fallbacks = 0
            replies.append(self._offer_handoff(state, "repeated_fallbacks"))
        return replies

    def _offer_handoff(self, state: ConversationState, reason: str) -> Outgoing:
        state.handoff_offered = reason
        return Outgoing(Kind.HANDOFF_OFFER, HANDOFF_OFFER_TEXT)
