"""What a fan is told about their data (GDPR Art. 13 and 15, CCPA's right to know): who the
controller and the data-protection officer are, why the data is used and on what legal basis,
who receives it, how long it is kept, the fan's rights and where to complain.

One source for `/privacy` (prose), `/my-data` and `bot export` (the `about_this_data` and
`held_in_memory` sections of the JSON export, `docs/my-data.schema.json`, added by `access`),
so they cannot say different things. Every sentence must stay true to the code.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from bot.config import ConfigError, PrivacySettings

#: Shown for a contact the operator has not configured; allowed only without a platform
#: (`bot chat`, `bot replay`): `require_contacts` refuses to serve fans with these.
PLACEHOLDER = "[not configured: set [privacy] {key}]"
CONTACT_KEYS = ("controller", "contact", "dpo_contact")


def require_contacts(settings: PrivacySettings) -> None:
    """One line for a deployment that would serve fans without saying who answers for their data."""
    for key in CONTACT_KEYS:
        if not str(getattr(settings, key)).strip():
            raise ConfigError(
                f"privacy.{key} is empty: a bot serving Slack or Discord must name the controller, its contact and the "
                f"data-protection officer's contact (GDPR Art. 13); set [privacy] {key} or BOT_PRIVACY_{key.upper()}"
            )


@dataclass(frozen=True)
class PrivacyNotice:
    settings: PrivacySettings
    idle_minutes: float

    def _value(self, key: str) -> str:
        return str(getattr(self.settings, key)).strip() or PLACEHOLDER.format(key=key)

    @property
    def opt_in(self) -> bool:
        return self.settings.consent == "opt-in"

    def about(self) -> dict[str, Any]:
        """The facts, as data: the `about_this_data` section of `/my-data`."""
        days = f"{self.settings.retention_days:g}"
        transcripts_basis = (
            "your consent (GDPR Art. 6(1)(a)); /privacy off withdraws it"
            if self.opt_in
            else "legitimate interest in an auditable support assistant (GDPR Art. 6(1)(f)); /privacy off objects"
        )
        return {
            "controller": {"name": self._value("controller"), "contact": self._value("contact")},
            "data_protection_officer": {"contact": self._value("dpo_contact")},
            "purposes": ["answering you", "handoffs to moderators (/human)", "transcripts for moderators and audits",
                         "ratings, to improve answers"],
            "legal_basis": {
                "transcripts_and_ratings": transcripts_basis,
                "handoffs": "your request (Art. 6(1)(b))",
                "consent_record": "legal obligation to demonstrate consent (Art. 7(1))",
            },
            "categories": ["pseudonym", "redacted encrypted messages", "intent and confidence", "tickets", "ratings",
                           "privacy choice and consent"],
            "source": "you, via the platform",
            "recipients": ["moderators, on a handoff you ask for", "the platform you write on (Slack or Discord)", "the operator"],
            "sold_or_shared": "never (CCPA)",
            "retention": {
                "transcripts": f"{days} days",
                "tickets": f"{days} days after closing",
                "ratings": f"{days} days",
                "conversation_state": f"{self.idle_minutes:g} idle minutes",
                "consent_and_choices": "until changed or /forget-me",
            },
            "rights": ["access and portability: /my-data", "erasure: /forget-me", "object or withdraw consent: /privacy off",
                       "anything else: the contact above", "a person: /human", "no discrimination (CCPA)"],
            "complaints": self.settings.supervisory_authority,
        }

    def access(self, export: dict[str, Any], live: bool) -> dict[str, Any]:
        """The store's export of a fan completed for GDPR Art. 15: what memory holds and the
        Art. 13 facts. `live`: served to the fan by a running bot (`/my-data`); otherwise the
        operator's `bot export`, made from the database, which cannot see a process's memory.

        Under opt-in, a fan who never answered the consent question has no stored preference,
        and the stored default ("on") would not be true: nothing is logged before a yes."""
        minutes = f"{self.idle_minutes:g}"
        consent = export.get("consent")
        not_agreed = self.opt_in and (consent is None or consent.get("choice") != "yes")
        if self.opt_in and consent is None:
            export["transcript_logging"] = "waiting_for_consent"
        if live:
            held = {
                "dialogue_history": "your recent messages, kept by the AI model in memory only, "
                f"dropped after {minutes} idle minutes or on /forget-me",
            }
            if not_agreed:
                held["conversation_state"] = (
                    "until you agree to storage, what I remember of our conversation between messages (whether the AI "
                    "disclosure was shown, a yes/no question waiting, the last answer for /why; never your words) is kept "
                    f"in this process's memory only, dropped after {minutes} idle minutes, on /forget-me or at a restart"
                )
        else:
            held = {
                "dialogue_history": "a running bot's AI model keeps your recent messages in memory only, never on disk, "
                f"and drops them after {minutes} idle minutes or on /forget-me; this export was made by the operator "
                "from the stored data and cannot include what a running process holds in memory",
            }
        export["held_in_memory"] = held
        export["about_this_data"] = self.about()  # GDPR Art. 15(1)(a)-(h), CCPA right to know
        return export

    @property
    def version(self) -> str:
        """Identifies the notice shown (recorded with a consent): a digest of its facts, so
        any change of wording, contacts, retention or legal basis is a new version."""
        digest = hashlib.sha256(json.dumps(self.about(), sort_keys=True).encode("utf-8")).hexdigest()
        return f"n-{digest[:12]}"

    def text(self, logging_on: bool, consent: str | None = None) -> str:
        """`/privacy`: plain language, the same facts as `about()`."""
        about = self.about()
        days = f"{self.settings.retention_days:g}"
        if self.opt_in:
            choice = {"yes": "you agreed", "no": "you declined"}.get(consent or "", "you have not answered yet, so nothing is stored")
            state = f"Storage needs your consent here: {choice}. /privacy on agrees, /privacy off declines or withdraws."
        else:
            state = f"Transcript logging is {'on' if logging_on else 'off'} for you: /privacy off stops it, /privacy on resumes it."
        return "\n".join(
            [
                f"Who is responsible: {about['controller']['name']} ({about['controller']['contact']}); "
                f"data-protection officer: {about['data_protection_officer']['contact']}.",
                "What I keep: our messages, with personal details (e-mail addresses, phone and card numbers, "
                "IBANs, IP addresses, mentions, links with tokens, secrets) replaced by placeholders before storage, "
                "plus the time, and which question I understood and how sure I was; your ratings of my answers (no text). "
                "What I never keep: your name or display name, your platform id (a keyed pseudonym replaces it), "
                "and attachments.",
                "Why: to answer you, to hand you to a moderator when you ask, to let moderators and the operator follow "
                "and audit the assistant, and to improve answers you rate. Legal basis: "
                f"{about['legal_basis']['transcripts_and_ratings']}; handoffs: your request.",
                f"How long: {days} days, then it is deleted automatically (tickets: {days} days after they close). The AI "
                f"model's own working memory of our chat is never written to disk and is dropped after {self.idle_minutes:g} "
                "idle minutes.",
                "Protection: stored messages are encrypted with a key of your own, itself encrypted by the "
                "operator's master key. Each encrypted record carries the time it was written in readable form.",
                "Who receives it: moderators, only for a handoff you ask for with /human; the platform you write on "
                "(Slack or Discord) carries the messages under its own privacy policy. Nothing is sold or shared.",
                state + " Even with logging off, a handoff keeps the messages between you and the moderator (redacted, "
                "encrypted) until the ticket closes, then deletes them; the ticket's times, reason and the moderator's "
                f"display name are kept for {days} days.",
                "Your rights: /my-data shows everything stored about you (tickets, ratings and your consent included) as "
                "JSON; /forget-me erases it for good; /privacy off objects; for anything else write to the contact above. "
                f"You may complain to {self.settings.supervisory_authority}.",
            ]
        )
