"""Minimization: fan messages lose their personal data before anything stores them.

Typed placeholders (not blanks) keep a stored turn useful for support and analytics while
the data itself is gone. Detectors lean towards recall where keeping the data is
dangerous (cards, IBANs, secrets: checksums and shapes keep false alarms rare anyway) and
towards precision for plain numbers, because fan talk is full of dates, prices, episode
and order numbers that must survive for the conversation to make sense.

Decisions worth knowing:

* URLs are kept verbatim when they carry nothing personal: no query string, no
  credentials, no token-like path segment or fragment, no IP host, no e-mail in the path.
  Help and episode links stay readable, long readable ``#anchors`` and numeric ids
  (``/status/1798234567890123456``) included; any other URL becomes ``[URL]`` whole,
  because a partly redacted URL still leaks through its other parts.
* Libraries validate (see `bot.privacy.redaction`): libphonenumber for phones in the
  configured regions (`configure`), python-stdnum for IBANs, Luhn, ISBN and EAN,
  email-validator for RFC 6531 addresses. Secrets follow a documented provider rule set
  (`bot.privacy.redaction.secret_rules`) plus an entropy rule; a token is replaced whole.
* Check-digit identifiers that are not cards stay: an ISBN/EAN/GTIN/UPC/IMEI/serial word
  before the number, or a 13-digit Bookland (978/979) number.
* A digit run right after "order", "ticket", "case" (and similar reference words) is a
  reference, not a phone or a Discord id. A Luhn-valid card number is redacted wherever
  it appears: a false alarm on an order number costs far less than a stored card.
* Discord custom emoji, timestamps and slash-command mentions keep their ids: those ids
  name public objects, not people.
* Plain ``@name`` handles, postal addresses, names and passwords in prose are not
  detected: they need language understanding, not patterns.

Speed matters (the store appends thousands of turns a second): every pattern is
precompiled and starts with a literal or a character class so the regex engine can skip
to candidates, cheap checks skip the detectors that cannot match, and context searches
run only for a candidate that needs them. Ordinary chat costs a few microseconds,
messages dense with numbers and PII tens of microseconds, and 4000 characters of
adversarial digit groups stay within milliseconds.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import urlsplit

from stdnum import ean
from stdnum import iban as stdnum_iban
from stdnum.exceptions import ValidationError

from bot.privacy.redaction import emails, secret_rules
from bot.privacy.redaction.phones import DEFAULT_REGIONS, PhoneBook

EMAIL = "[EMAIL]"
PHONE = "[PHONE]"
CARD = "[CARD]"
IBAN = "[IBAN]"
IP = "[IP]"
MENTION = "[MENTION]"
URL = "[URL]"
SECRET = "[SECRET]"

#: Every placeholder `redact` may produce; `Redaction.counts` is keyed by these.
PLACEHOLDERS: tuple[str, ...] = (EMAIL, PHONE, CARD, IBAN, IP, MENTION, URL, SECRET)


Counts = dict[str, int]

_book = PhoneBook(DEFAULT_REGIONS)


def configure(phone_regions: tuple[str, ...] = DEFAULT_REGIONS) -> None:
    """Set the regions whose national phone formats are recognised (`[privacy] phone_regions`).

    Called once at start-up, before any message; numbers with "+" or "00" are found whatever
    the regions.
    """
    global _book
    _book = PhoneBook(tuple(phone_regions))


@dataclass(frozen=True)
class Redaction:
    """The minimized text, and how many items of each placeholder type were replaced."""

    text: str
    counts: dict[str, int] = field(default_factory=dict, hash=False)

    @property
    def changed(self) -> bool:
        return bool(self.counts)


def _preceded_by_word(text: str, index: int, extra: str = "") -> bool:
    """Whether the character before `index` glues a match to a word (regex `\\b`, by hand)."""
    if index <= 0:
        return False
    char = text[index - 1]
    return char.isalnum() or char == "_" or char in extra


def _window(text: str, end: int, size: int = 40) -> tuple[str, int]:
    """The lowercased text just before `end`, and where it starts: context checks use it."""
    start = max(0, end - size)
    return text[start:end].lower(), start


def _search_word(pattern: re.Pattern[str], text: str, end: int) -> bool:
    """Whether `pattern` matches, as a whole word, in the lowercased text before `end`.

    The patterns start with literals (fast to find) and the word boundary is checked
    here, because a leading `\\b` or ignore-case flag would make the engine try every
    position.
    """
    window, offset = _window(text, end)
    position = 0
    while True:
        match = pattern.search(window, position)
        if match is None:
            return False
        if not _preceded_by_word(text, offset + match.start()):
            return True
        position = match.start() + 1


# ------------------------------------------------------------- markup and URLs
# Platform markup and URLs are cut out first: markup ids must not be re-read as phones
# or cards, and a URL must be judged whole before its pieces look like anything else.

_URL_TAIL = r"[^\s<>\"'`]+"
_URL_STARTS = ("https://", "http://", "ftp://", "www.")
_MARKUP_RE = re.compile(
    r"<(?:"
    r"@[!&]?[A-Za-z0-9]+(?:\|[^<>\n]*)?"
    r"|\#[A-Za-z0-9]+(?:\|[^<>\n]*)?"
    r"|!(?:here|channel|everyone|subteam\^[A-Za-z0-9]+)(?:\|[^<>\n]*)?"
    r"|a?:\w{1,32}:\d{15,21}"
    r"|t:-?\d{1,13}(?::[tTdDfFR])?"
    r"|/[\w -]{1,64}:\d{15,21}"
    r"|(?i:https?|ftp|mailto|tel):[^\s<>|]+(?:\|[^<>\n]*)?"
    r")>|"
    + "|".join(
        re.escape(variant) + _URL_TAIL
        for start in _URL_STARTS
        for variant in sorted({start, start.upper(), start.capitalize()})
    )
)
_URL_TRAILING = ".,;:!?'\")]}*_~"
_URL_RUN_RE = re.compile(r"[A-Za-z0-9]{16,}")
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _token_like(part: str) -> bool:
    """A path segment or fragment carrying a key, an id handed to one person or a token:
    a random-looking run of 16+ letters and digits, a UUID, or a provider token. Readable
    slugs, anchors and plain numeric ids are not."""
    if "=" in part or "&" in part:
        return True
    for run in _URL_RUN_RE.findall(part):
        if not run.isdigit() and _looks_random(run, named_secret=True):
            return True
    return _UUID_RE.search(part) is not None or secret_rules.PATTERN.search(part) is not None
# Webhooks are credentials; links into a chat (Discord channels, Slack archives) point at a
# person's message, so their numeric ids count, unlike a public post's or a doc's id.
_WEBHOOK_RE = re.compile(
    r"hooks\.slack\.com|/webhooks?/|/hooks/|discord(?:app)?\.com/channels/\d|slack\.com/archives/", re.IGNORECASE
)


def _trim_url(url: str) -> str:
    """Sentence punctuation after a URL is not part of it (unless it closes a bracket)."""
    while url and url[-1] in _URL_TRAILING:
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        url = url[:-1]
    return url


def _url_is_sensitive(url: str) -> bool:
    """Whether keeping this URL would keep personal data or a credential."""
    try:
        parts = urlsplit(url if "://" in url else "http://" + url)
        host = parts.hostname or ""
    except ValueError:
        return True
    if parts.query or "@" in parts.netloc or "@" in parts.path:
        return True
    if parts.fragment and _token_like(parts.fragment):
        return True
    if parts.username or parts.password or _WEBHOOK_RE.search(url) or _token_like(parts.path):
        return True
    if not host or not (host[0].isdigit() or ":" in host):
        return False  # a name, not an address literal (cheaper than letting ipaddress fail)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _redact_markup(text: str, match: re.Match[str], counts: Counts) -> Optional[tuple[str, int]]:
    """Replacement for one piece of markup and the length it covers (None: not markup)."""
    whole = match.group()
    if whole[0] != "<":
        extra = "@.-/" if whole[:4].lower() == "www." else ""
        if _preceded_by_word(text, match.start(), extra):
            return None
        url = _trim_url(whole)
        if _url_is_sensitive(url):
            counts[URL] = counts.get(URL, 0) + 1
            return URL, len(url)
        return url, len(url)
    marker = whole[1]
    if marker in "@#!":
        counts[MENTION] = counts.get(MENTION, 0) + 1
        return MENTION, len(whole)
    if marker in ":/" or whole[1:3] in ("a:", "t:"):
        return whole, len(whole)
    target = whole[1:-1].split("|", 1)[0]
    scheme = target.split(":", 1)[0].lower()
    if scheme == "mailto":
        counts[EMAIL] = counts.get(EMAIL, 0) + 1
        return EMAIL, len(whole)
    if scheme == "tel":
        counts[PHONE] = counts.get(PHONE, 0) + 1
        return PHONE, len(whole)
    if _url_is_sensitive(target):
        counts[URL] = counts.get(URL, 0) + 1
        return URL, len(whole)
    return whole, len(whole)


# ---------------------------------------------------------------------- secrets

# Discord bot tokens: base64(user id) . timestamp . HMAC, about 24.6.27 characters.
_DISCORD_RE = re.compile(
    r"(?<![\w.-])[A-Za-z0-9_-]{23,28}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,40}(?![\w.-])"
)
# Long runs that may carry "-_+/" (base64) and "=" padding; slugs, paths and hashtags are
# excluded by what may precede the run and by the separator budget.
_ENTROPY_CANDIDATE_RE = re.compile(r"[A-Za-z0-9](?<![\w#@/.+-].)[A-Za-z0-9_+/-]{31,}={0,2}(?![\w+/=-])")
_SECRET_CONTEXT_RE = re.compile(r"(?:secret|key|token|passw(?:or)?d|pwd|api|auth)\W{0,3}(?:is\W{0,3})?$")
_ENTROPY_SEPARATORS = frozenset("_+/=-")


def _looks_random(run: str, named_secret: bool) -> bool:
    """Random tokens mix letters and digits, have few separators and high entropy.

    One digit in 32+ characters is as likely a CamelCase title as a key, so it takes a
    word like "secret" or "token" just before the run to count.
    """
    digits = sum(c.isdigit() for c in run)
    letters = sum(c.isalpha() for c in run)
    separators = sum(c in _ENTROPY_SEPARATORS for c in run)
    if digits < (1 if named_secret else 2) or letters < 2 or separators * 8 > len(run):
        return False
    size = len(run)
    entropy = -sum(n / size * math.log2(n / size) for n in Counter(run).values())
    return entropy >= 3.0


def _long_tokens(text: str, words: list[str], size: int) -> list[tuple[int, int]]:
    """Spans of the whitespace-separated `words` of `text` with at least `size` characters.

    Secrets never contain spaces, so their patterns only need to run over these, which
    in chat are few or none. A long word cannot hide in a shorter one, so searching from
    the end of the previous long word finds each in place.
    """
    spans: list[tuple[int, int]] = []
    position = 0
    for word in words:
        if len(word) >= size:
            position = text.find(word, position)
            spans.append((position, position + len(word)))
            position += len(word)
    return spans


def _splice(text: str, spans: list[tuple[int, int]], placeholder: str, counts: Counts) -> str:
    if not spans:
        return text
    out: list[str] = []
    last = 0
    for start, end in spans:
        out.append(text[last:start])
        out.append(placeholder)
        last = end
    out.append(text[last:])
    counts[placeholder] = counts.get(placeholder, 0) + len(spans)
    return "".join(out)


_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+/=")


def _token_end(text: str, end: int, limit: int) -> int:
    """A rule matched the start of a token: extend over the rest of it (a dot only inside)."""
    while end < limit:
        char = text[end]
        if char in _TOKEN_CHARS or (char in ".:" and end + 1 < limit and text[end + 1] in _TOKEN_CHARS):
            end += 1
        else:
            break
    return end


def _secret_pass(text: str, counts: Counts, tokens: list[tuple[int, int]]) -> str:
    spans: list[tuple[int, int]] = []
    for start, end in tokens:
        position = start
        while True:
            match = secret_rules.PATTERN.search(text, position, end)
            if match is None:
                break
            if _preceded_by_word(text, match.start()):
                position = match.start() + 1
                continue
            stop = _token_end(text, match.end(), end)
            spans.append((match.start(), stop))
            position = stop
        if end - start >= 58 and not any(start <= s < end for s, _ in spans):
            for match in _DISCORD_RE.finditer(text, start, end):
                token = match.group()  # hostnames and file names have no digits and capitals
                if any(c.isdigit() for c in token) and any(c.isupper() for c in token):
                    spans.append(match.span())
    return _splice(text, sorted(spans), SECRET, counts)


def _entropy_pass(text: str, counts: Counts, tokens: list[tuple[int, int]]) -> str:
    spans: list[tuple[int, int]] = []
    for start, end in tokens:
        for match in _ENTROPY_CANDIDATE_RE.finditer(text, start, end):
            window, _ = _window(text, match.start(), 24)
            if _looks_random(match.group(), _SECRET_CONTEXT_RE.search(window) is not None):
                spans.append(match.span())
    return _splice(text, spans, SECRET, counts)


# --------------------------------------------------------------------- e-mails
# Anchored on "@", which the engine finds fast; see `bot.privacy.redaction.emails`.


def _email_pass(text: str, counts: Counts) -> str:
    out: list[str] = []
    last = 0
    for match in emails.DOMAIN_RE.finditer(text):
        at = match.start()
        if at < last:
            continue
        start = emails.local_start(text, at, last)
        if start is None:
            continue
        end = match.end()
        address = text[start:end]
        if not emails.valid(address):
            # Sentence punctuation glued to the front ("!!me@x.io") is not the address.
            start = next((i for i in range(start, at) if text[i].isalnum()), at)
            address = text[start:end]
            if start == at or not emails.valid(address):
                continue
        out.append(text[last:start])
        out.append(EMAIL)
        counts[EMAIL] = counts.get(EMAIL, 0) + 1
        last = end
    out.append(text[last:])
    return "".join(out)


# ----------------------------------------------------------------------- IBANs

_IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
    "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip  (checked against python-stdnum's IBAN registry: no country differs or is missing)
# A country code (any case), an optional separator, the check digits, then characters with
# at most one separator (space, dash, dot) between them. The country's fixed length says
# where the IBAN ends; python-stdnum checks the check digits and the country's BBAN format.
_IBAN_CANDIDATE_RE = re.compile(r"[A-Za-z]{2}(?<![A-Za-z0-9][A-Za-z]{2})[ ./-]?\d\d(?:[ ./-]?[A-Za-z0-9]){10,}")
_IBAN_SEPARATORS = " ./-"


def _iban_ok(compact: str) -> bool:
    """ISO 13616 check digits and the country's BBAN format, by python-stdnum (the national
    bank-code checks are skipped: a registry example like BE68 5390 0754 7034 fails them)."""
    try:
        stdnum_iban.validate(compact, check_country=False)
    except ValidationError:
        return False
    return True


def _match_iban(text: str, start: int) -> int:
    """End of the IBAN starting at text[start], 0 if there is none."""
    length = _IBAN_LENGTHS.get(text[start : start + 2].upper())
    if length is None:
        return 0
    taken: list[str] = []
    index, size = start, len(text)
    while index < size and len(taken) < length:
        char = text[index]
        if char.isascii() and char.isalnum():
            taken.append(char)
        elif not (char in _IBAN_SEPARATORS and taken and index + 1 < size and text[index + 1].isalnum()):
            return 0
        index += 1
    if len(taken) < length or (index < size and text[index].isalnum()):
        return 0  # too short, or the country's length ends inside a group: not an IBAN
    return index if _iban_ok("".join(taken).upper()) else 0


def _iban_pass(text: str, counts: Counts) -> str:
    out: list[str] = []
    last = position = 0
    while True:
        match = _IBAN_CANDIDATE_RE.search(text, position)
        if match is None:
            break
        start = match.start()
        end = _match_iban(text, start)
        if end:
            out.append(text[last:start])
            out.append(IBAN)
            counts[IBAN] = counts.get(IBAN, 0) + 1
            last = position = end
        else:
            position = start + 1  # a failed run may hide an IBAN further on
    out.append(text[last:])
    return "".join(out)


# ------------------------------------------------------------------------- IPs

_IPV4_RE = re.compile(r"\d(?<![\w.]\d)\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\w]|\.\d)")
_IPV6_RE = re.compile(
    r"(?<![\w:.%])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?"
    r"(?:%[A-Za-z0-9_.-]+)?(?![\w:])"
)
_VERSION_CONTEXT_RE = re.compile(
    r"(?:version|ver|firmware|fw|build|release|patch|update|driver|app)\s*[.:#]?\s*$"
)


def _ipv6_pass(text: str, counts: Counts) -> str:
    def replace(match: re.Match[str]) -> str:
        candidate = match.group()
        if candidate.strip(":"):  # "::" alone is punctuation far more often than an address
            try:
                ipaddress.IPv6Address(candidate)
            except ValueError:
                return candidate
            counts[IP] = counts.get(IP, 0) + 1
            return IP
        return candidate

    return _IPV6_RE.sub(replace, text)


def _ipv4_pass(text: str, counts: Counts) -> str:
    def replace(match: re.Match[str]) -> str:
        candidate = match.group()
        if _search_word(_VERSION_CONTEXT_RE, text, match.start()):
            return candidate  # "firmware 4.2.1.0"
        window, _ = _window(text, match.start(), 16)
        if _PHONE_CONTEXT_RE.search(window) or window.rstrip().endswith(("tel.", "tel:", "tél.", "tél")):
            return candidate  # "Tel. 40.61.23.45": a French phone, left to the number pass
        try:
            ipaddress.IPv4Address(candidate)
        except ValueError:
            return candidate
        counts[IP] = counts.get(IP, 0) + 1
        return IP

    return _IPV4_RE.sub(replace, text)


# -------------------------------------------------- cards, Discord ids, phones
# One scan finds runs of digit groups holding at least 7 digits, for all three. A run
# never starts glued to a word, a decimal point, a price sign or "#", and never ends
# glued to a word, "%" or another number ("12.99", "9/10", "10:30").

_NUMBER_RUN_RE = re.compile(
    r"(?:[(+\d](?<=[^\W\d_][,/:;][(+\d])|\+(?<=[,/:;]\+)|[(+\d](?<![\w+.,/#$€£¥:-][(+\d]))(?=(?:[ ().+-]{0,3}\d){6})"
    r"(?:(?<=\()\+\d{1,4}\)|(?<=\()\d{1,5}\)|(?<=\+) ?\d+|(?<=\d)\d*)"
    r"(?:(?:[ .-]|(?<=\)))(?:\(\d{1,5}\)|\d+))*(?:(?=[xX]\d)|(?![\w%]|[.,/:]\d))"
)
# An extension after a phone: "x4587", " ext 7246433", " ext. 89", " extension 12".
_EXTENSION_RE = re.compile(r"[ ,;]{0,2}(?:[xX]|[eE][xX][tT](?:[.:]|[eE][nN][sS][iI][oO][nN])?|#)[ .:]{0,2}\d{1,7}(?![\w.,]\d|\w)")
# A check-digit identifier named just before the number: not a card, not a phone.
_IDENTIFIER_CONTEXT_RE = re.compile(
    r"(?:isbn|issn|ean|gtin|upc|imei|meid|serial|s/n|sku|asin|barcode|catalog|catalogue)"
    r"(?:[- ]?1[03])?\s*(?:no\.?|nr\.?|number|num|code)?\s*[:#=]?\s*$"
)
# Card networks' first digits (ISO/IEC 7812 IINs): Visa 4, Mastercard 2/5, Amex and
# Diners 3, Discover/UnionPay/Maestro 6, RuPay 81/82, Troy 9792, UATP 1 (15 digits).
_CARD_IIN_RE = re.compile(r"[2-6]|8[12]|9792|1(?=\d{14}$)")
# Maestro's 12-digit cards (the shortest PANs in use) start with these IINs.
_MAESTRO_12 = ("5018", "5020", "5038", "5893", "6304", "6759", "6761", "6762", "6763", "0604", "6390")
_GROUP_RE = re.compile(r"\(\d{1,5}\)|\d+")
_DIGIT_RE = re.compile(r"\d")
_COMMON_RUN_RE = re.compile(
    r"(?P<card>\d{4}([ -]?)\d{4}\2\d{4}\2\d{4})"
    r"|(?P<plus>\(?\+[\d ().-]+)"
    r"|(?P<nanp>(?:\(\d{3}\) ?|\d{3}[-. ])\d{3}[-. ]\d{4})"
)
# A quantity word after a number: "1 000 000 members", "1500000000 views".
_QUANTITY_AFTER_RE = re.compile(
    r"\s?(?:views?|votes?|members?|subs(?:cribers)?|followers?|people|fans|likes|hours?|minutes?|points?"
    r"|pts|copies|downloads|streams|plays|users|times|years?|days?|km|miles|kr|eur|usd|gbp|dollars?|euros?)\b",
    re.IGNORECASE,
)
_DATE_RUN_RE = re.compile(r"\d{4}([-.])\d{1,2}\1\d{1,2}|\d{1,2}([-.])\d{1,2}\2\d{4}")
_REFERENCE_CONTEXT_RE = re.compile(
    r"(?:order|ticket|case|invoice|booking|confirmation|tracking|transaction|receipt|reference"
    r"|ref|request|shipment|parcel|pedido|encomenda|commande|bestellung|bestellnummer|bestelling|ordine"
    r"|zam[oó]wienie|factura|facture|rechnung|fattura|fatura|reserva|r[ée]servation|buchung|prenotazione"
    r"|sendung|colis|paquete|envío|envio|numéro de suivi|número de seguimiento|sendungsnummer)"
    r"(?:s|en|es)?\s*(?:#|no\.?|nr\.?|n[º°o]\.?|number|num|id|code|número|numéro|nummer|numero)?"
    r"\s*(?:(?:is|was)\b|[:#=])?\s*$"
)
_PHONE_CONTEXT_RE = re.compile(
    r"(?:call|ring|phone|tel|telephone|mobile|cell|whatsapp|whats app|sms|text me|reach me"
    r"|my number|fax)s?\b"
)
_DATE_SHAPES = frozenset(
    {(4, 2, 2), (2, 2, 4), (1, 1, 4), (1, 2, 4), (2, 1, 4), (4, 1, 1), (4, 2, 1), (4, 1, 2)}
)
_NANP_SHAPES = frozenset({(3, 3, 4), (1, 3, 3, 4)})

_MAX_CHUNKS = 8  # no phone or card is written in more pieces; bounds the work per start


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card_shape(lengths: tuple[int, ...]) -> bool:
    """12-19 digits, and written as cards are: one unbroken run or a first group of four
    (4-4-4-4, 4-6-5, 4-4-4-4-3); that keeps references like 112-3456789-1234567 out.
    """
    if not 12 <= sum(lengths) <= 19:
        return False
    return len(lengths) == 1 or (lengths[0] == 4 and all(3 <= n <= 6 for n in lengths[1:-1]))


def _is_card(digits: str) -> bool:
    """Luhn-valid (python-stdnum) on a card network's IIN; a 13-digit Bookland EAN (an
    ISBN-13, 978/979) and a 12-digit number outside Maestro's IINs are not cards."""
    size = len(digits)
    if size == 12:
        if not digits.startswith(_MAESTRO_12):
            return False
    elif size == 13 and digits.startswith(("978", "979")) and ean.is_valid(digits):
        return False
    if not _CARD_IIN_RE.match(digits) and size != 12:
        return False
    return _luhn_ok(digits)


def _identifier(text: str, start: int) -> bool:
    """An ISBN, EAN, IMEI, serial... word just before the number: a product id, not personal."""
    return _search_word(_IDENTIFIER_CONTEXT_RE, text, start)


def _phone_shape(piece: str, lengths: tuple[int, ...], context: bool, library: bool = False) -> bool:
    """Whether a stretch of digit groups is written the way phone numbers are: our shape
    rules, then (`library`: the stretch is a whole run, no quantity word after it)
    libphonenumber's metadata for the configured regions."""
    if _shape_rules(piece, lengths, context):
        return True
    if not library or context or piece.startswith(("+", "(+", "00")):
        return False
    digits = sum(lengths)
    number = "".join(c for c in piece if c.isdigit())
    if len(lengths) == 1:
        # A bare run: a mobile of 9 digits (612345678) or a national one with its trunk 0.
        if digits == 9:
            return _book.national(number, mobile_only=True)
        return 10 <= digits <= 11 and number[0] == "0" and _book.national(number)
    if lengths[0] > 5 or min(lengths[1:]) < 2 or not 8 <= digits <= 12:
        return False
    if lengths in _DATE_SHAPES or all(n == 4 and number[k * 4 : k * 4 + 2] in ("19", "20") for k, n in enumerate(lengths)):
        return False  # dates, years and year ranges
    if lengths[0] <= 2 and all(n == 3 for n in lengths[1:]):
        return False  # 1 234 567: a count written with thousands separators
    if "." in piece and len(lengths) < 3:
        return False  # 22621.2861: builds and decimals
    return _book.national(number)


def _shape_rules(piece: str, lengths: tuple[int, ...], context: bool) -> bool:
    digits = sum(lengths)
    if piece.startswith(("+", "(+")):
        return 8 <= digits <= 15
    if piece.startswith("00") and len(lengths) >= (4 if lengths[0] == 3 else 2) and lengths[0] <= 5:
        return 11 <= digits <= 17  # 00 + country code + national number
    if lengths in _NANP_SHAPES and (len(lengths) == 3 or piece[0] == "1"):
        return True
    if len(lengths) == 1:
        # A bare NANP number never starts with 0 or 1 and a national one starts with a
        # trunk 0: "1500000000 views" or a Unix time is neither.
        plausible = (digits == 10 and piece[0] != "1") or (digits == 11 and piece[0] in "01")
        return plausible or (context and 7 <= digits <= 15)
    national = piece.lstrip("(")
    if (
        national.startswith("0")
        and national[1:2] != "0"
        and 9 <= digits <= 11
        and 2 <= lengths[0] <= 5
        and min(lengths[1:]) >= 2
    ):
        return True  # 0151 496 0123, 07700 900123, 01 23 45 67 89
    return context and 7 <= digits <= 15 and lengths not in _DATE_SHAPES


def _chunk_digits(chunk: str) -> tuple[str, tuple[int, ...]]:
    """The digits of a space-free piece of a run, and how they are grouped."""
    if chunk.isdigit():
        return chunk, (len(chunk),)
    groups = [group.strip("()") for group in _GROUP_RE.findall(chunk)]
    return "".join(groups), tuple(len(group) for group in groups)


def _first_in_run(text: str, start: int, end: int) -> Optional[tuple[int, int, str]]:
    """The leftmost card, Discord id or phone in the run text[start:end], if any.

    Runs glue neighbouring numbers ("2026 0151 496 0123"), so candidates are stretches
    of whole space-separated chunks: "10.0.19045" or "2026-11" are never split. At each
    start the longest stretch is tried first, and a card beats an id beats a phone.
    Chunks are read lazily, so a run of many numbers costs linear time; the context
    searches cost most, so they run last and once per run.
    """
    run = text[start:end]
    if _DATE_RUN_RE.fullmatch(run):
        return None  # the most common long number in chat, and never anything else here
    # Fast paths for the common whole-run formats; they give what the search below would.
    common = _COMMON_RUN_RE.fullmatch(run)
    if common is not None:
        if common.lastgroup == "card":
            if _is_card(run.replace(" ", "").replace("-", "")) and not _identifier(text, start):
                return start, end, CARD
        elif (common.lastgroup == "nanp" or 8 <= len(_DIGIT_RE.findall(run)) <= 12) and not _search_word(
            _REFERENCE_CONTEXT_RE, text, start
        ):
            return start, end, PHONE
    library = _QUANTITY_AFTER_RE.match(text, end) is None and not _search_word(_VERSION_CONTEXT_RE, text, start)
    if run.isdigit():  # one bare number: the search below, unrolled
        size = len(run)
        if 12 <= size <= 19 and _is_card(run) and not _identifier(text, start):
            return start, end, CARD
        if size in (10, 13) and _identifier(text, start):
            return None
        if 17 <= size <= 20:
            placeholder = MENTION
        elif _phone_shape(run, (size,), False, library) or (
            _phone_shape(run, (size,), True) and _search_word(_PHONE_CONTEXT_RE, text, start)
        ):
            placeholder = PHONE
        else:
            return None
        return None if _search_word(_REFERENCE_CONTEXT_RE, text, start) else (start, end, placeholder)
    chunks = run.split(" ")
    offsets: list[int] = []
    digits: list[str] = []
    shapes: list[tuple[int, ...]] = []
    totals = [0]  # digits before each chunk, for O(1) stretch sizes
    reference: Optional[bool] = None
    context: Optional[bool] = None
    for i in range(len(chunks)):
        while len(digits) < min(len(chunks), i + _MAX_CHUNKS):
            index = len(digits)
            offsets.append(offsets[-1] + len(chunks[index - 1]) + 1 if index else 0)
            value, shape = _chunk_digits(chunks[index])
            digits.append(value)
            shapes.append(shape)
            totals.append(totals[-1] + len(value))
        phone: Optional[int] = None
        maybe_phone: Optional[int] = None  # a phone only next to a word like "call"
        for j in range(len(digits) - 1, i - 1, -1):
            count = totals[j + 1] - totals[i]
            if count < 7:
                break  # shorter stretches only get shorter
            shape = sum(shapes[i : j + 1], ())
            if 12 <= count <= 19 and _card_shape(shape) and _is_card("".join(digits[i : j + 1])):
                if not any("(" in chunk for chunk in chunks[i : j + 1]) and not _identifier(text, start):
                    return start + offsets[i], start + offsets[j] + len(chunks[j]), CARD
            if phone is None and count <= 17:
                piece = run[offsets[i] : offsets[j] + len(chunks[j])]
                if _phone_shape(piece, shape, False, library and i == 0 and j == len(chunks) - 1):
                    phone = j
                elif maybe_phone is None and _phone_shape(piece, shape, True):
                    maybe_phone = j
        chunk = chunks[i]
        placeholder = PHONE
        if 17 <= len(chunk) <= 20 and chunk.isdigit():
            found, placeholder = i, MENTION
        elif phone is not None:
            found = phone
        elif maybe_phone is not None:
            if context is None:
                context = _search_word(_PHONE_CONTEXT_RE, text, start)
            if not context:
                continue
            found = maybe_phone
        else:
            continue
        if reference is None:
            reference = _search_word(_REFERENCE_CONTEXT_RE, text, start) or _identifier(text, start)
        if not reference:
            return start + offsets[i], start + offsets[found] + len(chunks[found]), placeholder
    return None


def _redact_numbers(text: str, counts: Counts) -> str:
    """Cards, Discord ids and phones. A run may hold several: after a find, the rest of
    the run (past the space that ended the find) is searched as a run of its own.
    """
    out: list[str] = []
    last = position = 0
    while True:
        match = _NUMBER_RUN_RE.search(text, position)
        if match is None:
            break
        start, end = match.span()
        while start < end:
            found = _first_in_run(text, start, end)
            if found is None:
                break
            left, right, placeholder = found
            if placeholder == PHONE:
                extension = _EXTENSION_RE.match(text, right)
                if extension is not None:
                    right = extension.end()
                    end = max(end, right)
            out.append(text[last:left])
            out.append(placeholder)
            counts[placeholder] = counts.get(placeholder, 0) + 1
            last = right
            start = right + 1
        position = end
    out.append(text[last:])
    return "".join(out)


# ---------------------------------------------------------------------- driver

_TWO_DIGITS_RE = re.compile(r"\d\d")


def _redact_plain(text: str, counts: Counts) -> str:
    """Text outside markup and URLs.

    The order makes the specific detectors win: a token holds digit runs that look like
    phones, an IBAN's tail looks like a card, an IPv6 address holds an IPv4 one. Cheap
    checks skip the passes that cannot match.
    """
    if not text:
        return text
    # Every IBAN, card, id and phone has two adjacent digits; IPv4 is gated on its dots.
    has_digits = _TWO_DIGITS_RE.search(text) is not None
    words = text.split()
    longest = max(map(len, words), default=0)
    if longest >= 16:
        text = _secret_pass(text, counts, _long_tokens(text, words, 16))
    if "@" in text:
        text = _email_pass(text, counts)
    if has_digits:
        text = _iban_pass(text, counts)
    if longest >= 32:
        words = text.split()
        text = _entropy_pass(text, counts, _long_tokens(text, words, 32))
    if "::" in text or text.count(":") >= 6:  # a full IPv6 has 7 colons, 6 before an IPv4
        text = _ipv6_pass(text, counts)  # before IPv4: "::ffff:192.0.2.1" holds one
    if text.count(".") >= 3 and _DIGIT_RE.search(text) is not None:
        text = _ipv4_pass(text, counts)
    if has_digits:
        text = _redact_numbers(text, counts)
    return text


def redact(text: str) -> Redaction:
    """Replace personal data and credentials in one fan message with typed placeholders."""
    if not text:
        return Redaction(text, {})
    counts: Counts = {}
    out: list[str] = []
    last = 0
    if "<" in text or "://" in text or "www." in text or "WWW." in text or "Www." in text:
        position = 0
        while True:
            match = _MARKUP_RE.search(text, position)
            if match is None:
                break
            replaced = _redact_markup(text, match, counts)
            if replaced is None:
                position = match.start() + 1
                continue
            replacement, length = replaced
            out.append(_redact_plain(text[last : match.start()], counts))
            out.append(replacement)
            last = position = match.start() + length
    out.append(_redact_plain(text[last:], counts))
    return Redaction("".join(out), counts)
