"""Builds tests/data/redaction_heldout.jsonl: the evaluation corpus the patterns were NOT tuned on.

    .venv/bin/python tests/data/build_heldout_corpus.py

Deterministic (fixed seed). Written before the detectors it measures; see README.md beside
this file for where each part comes from. Each line is {"text", "expected", "part"}: the
sentence and the same sentence with every personal item or credential replaced by its
placeholder. Labels come from construction (a value of a known kind put into a sentence),
never from running the redactor.
"""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

import phonenumbers as pn
from stdnum import ean, isbn, luhn

HERE = Path(__file__).resolve().parent
OUT = HERE / "redaction_heldout.jsonl"
rng = random.Random(20260612)

# ------------------------------------------------------------------ sentence frames
# Hand-written, in the languages and registers fans use; "{x}" is where the value goes.
PHONE_FRAMES = [
    "you can reach me on {x} after 6pm", "call me at {x} pls", "my number is {x}",
    "Mi número es {x}, llámame cuando puedas", "Ruf mich bitte an: {x}", "appelle-moi au {x} stp",
    "il mio numero è {x}", "meu telefone é {x}", "bel me even op {x}", "zadzwoń pod {x}",
    "ring mig på {x}", "whatsapp: {x}", "{x} is my cell, text anytime", "Tel. {x}",
    "phone ({x}) - ask for Sam", "Office,{x}", "contact/{x}", "mobile:{x}",
    "If the merch is wrong call {x} and they fix it", "ich bin unter {x} erreichbar",
]
IBAN_FRAMES = [
    "please refund to my IBAN {x}", "IBAN: {x}", "mi IBAN es {x}", "meine IBAN lautet {x}.",
    "virement sur {x} svp", "bonifico su {x}", "send the prize money to {x} thx",
    "account {x} (holder: me)", "{x} is my bank account",
]
CARD_FRAMES = [
    "my card {x} got charged twice", "card number: {x}", "charged on {x} yesterday",
    "mi tarjeta {x} fue rechazada", "Karte {x} wurde abgelehnt", "carte bancaire {x} refusée",
    "is {x} still on file?", "use {x} exp 12/27", "pay with {x}",
]
EMAIL_FRAMES = [
    "my email is {x}", "mail me at {x}!", "contact: {x}", "escríbeme a {x}",
    "schreib mir an {x}.", "écris-moi à {x}", "login {x} doesn't work", "({x})",
    "send the code to {x}, thanks", "{x} never got the reset mail",
]
SECRET_FRAMES = [
    "here is my key {x} can you check", "token={x}", "I pasted {x} into the config by mistake",
    "export API_KEY={x}", "`{x}` is what the dashboard shows", "the bot token is {x}",
    "Authorization: Bearer {x}", "oops {x}",
]
IP_FRAMES = [
    "my IP is {x}", "banned from {x}?", "server at {x} is down", "connecting from {x} fails",
]
URL_FRAMES = ["check {x}", "link: {x}", "I got this mail: {x} is it legit?", "({x})"]
PLACEHOLDER = {"phone": "[PHONE]", "iban": "[IBAN]", "card": "[CARD]", "email": "[EMAIL]",
               "secret": "[SECRET]", "ip": "[IP]", "url": "[URL]"}  # fmt: skip


def row(part: str, frame: str, value: str, kind: str | None) -> dict[str, str]:
    text = frame.format(x=value)
    expected = frame.format(x=PLACEHOLDER[kind]) if kind else text
    return {"text": text, "expected": expected, "part": part}


rows: list[dict[str, str]] = []

# ------------------------------------------------------------------ phones
# libphonenumber's own example numbers (its published metadata), in the formats the
# library itself prints, plus hand-written separators and extensions.
NATIONAL_REGIONS = ["US", "CA", "GB", "IE", "AU", "NZ", "IN", "FR", "DE", "ES", "IT", "PT", "NL", "BE",
                    "CH", "AT", "DK", "SE", "NO", "FI", "PL", "CZ", "BR", "MX", "AR", "JP", "KR", "ZA"]  # fmt: skip
INTERNATIONAL_ONLY = ["VN", "TH", "EG", "KE", "MA", "PE", "SA", "AE", "HK", "TW", "RU", "UA", "TR", "GR",
                      "RO", "HU", "IL", "SG", "MY", "ID", "PH", "NG", "CL", "CO"]  # fmt: skip
EXTENSIONS = ["x{e}", " ext {e}", " ext. {e}", " extension {e}", " x {e}"]


def example_numbers(region: str) -> list[pn.PhoneNumber]:
    found = []
    for kind in (pn.PhoneNumberType.MOBILE, pn.PhoneNumberType.FIXED_LINE):
        number = pn.example_number_for_type(region, kind)
        if number is not None:
            found.append(number)
    return found


for region in NATIONAL_REGIONS + INTERNATIONAL_ONLY:
    for number in example_numbers(region):
        formats = [pn.PhoneNumberFormat.INTERNATIONAL, pn.PhoneNumberFormat.E164]
        if region in NATIONAL_REGIONS:
            formats.append(pn.PhoneNumberFormat.NATIONAL)
        for fmt in formats:
            value = pn.format_number(number, fmt)
            rows.append(row("phone/libphonenumber-example", rng.choice(PHONE_FRAMES), value, "phone"))
            if fmt == pn.PhoneNumberFormat.NATIONAL and " " in value and rng.random() < 0.5:
                rows.append(row("phone/libphonenumber-example", rng.choice(PHONE_FRAMES), value.replace(" ", rng.choice("-.")), "phone"))
        if region in ("US", "GB", "DE", "FR", "AU", "CA") and rng.random() < 0.9:
            value = pn.format_number(number, rng.choice([pn.PhoneNumberFormat.NATIONAL, pn.PhoneNumberFormat.INTERNATIONAL]))
            value += rng.choice(EXTENSIONS).format(e=rng.randint(1, 99999))
            rows.append(row("phone/extension", rng.choice(PHONE_FRAMES), value, "phone"))
# Hand-written numbers in national habits (fictional ranges where a country has them).
HAND_PHONES = [
    "(555) 010-4477", "555.010.9921", "1-800-555-0199", "+1 (212) 555-0147", "020 7946 0321",
    "07700 900 461", "+44 (0)20 7946 0999", "0161 496 0753", "06 12 34 56 78", "01 45 67 89 10",
    "+33 (0)6 12 34 56 78", "0151 23456789", "030 901820", "+49 (0) 30 1234567", "612 345 678",
    "91 123 45 67", "+34 612 34 56 78", "347 123 4567", "06 1234 5678", "+31 6 12345678",
    "0412 345 678", "(02) 9876 5432", "+61 412 345 678", "98765 43210", "+91 98765 43210",
    "090-1234-5678", "03-1234-5678", "+81 90 1234 5678", "010-1234-5678", "(11) 91234-5678",
    "+55 11 91234-5678", "55 1234 5678", "+52 1 55 1234 5678", "0470 12 34 56", "+32 470 12 34 56",
    "070 123 45 67", "+46 70 123 45 67", "412 34 567", "+47 412 34 567", "0044 20 7946 0123",
    "00 34 612 345 678", "+353 85 123 4567", "085 123 4567", "+48 512 345 678", "512-345-678",
]  # fmt: skip
for value in HAND_PHONES:
    rows.append(row("phone/hand-written", rng.choice(PHONE_FRAMES), value, "phone"))

# ------------------------------------------------------------------ IBANs
# The example IBAN of each country in the SWIFT IBAN registry (as republished by
# Wikipedia's IBAN article and the national banks), written compact, in groups of four,
# with a space after the country code, with dashes or dots, and in lower case.
IBANS = [line.strip() for line in (HERE / "heldout_sources" / "iban_registry_examples.txt").read_text().splitlines() if line.strip() and not line.startswith("#")]


def grouped(iban: str, sep: str) -> str:
    return sep.join(iban[i : i + 4] for i in range(0, len(iban), 4))


for iban in IBANS:
    styles = [iban, grouped(iban, " ")]
    styles.append(rng.choice([grouped(iban, "-"), grouped(iban, "."), iban[:2] + " " + grouped(iban[2:], " "), grouped(iban, " ").lower()]))
    for value in styles:
        rows.append(row("iban/registry-example", rng.choice(IBAN_FRAMES), value, "iban"))

# ------------------------------------------------------------------ cards
# Published test card numbers (payment providers' documentation: Stripe, Adyen, PayPal,
# Braintree) and Luhn-completed numbers on each brand's published IIN ranges.
PUBLISHED_CARDS = [
    "4242424242424242", "4000056655665556", "5555555555554444", "2223003122003222",
    "5200828282828210", "5105105105105100", "378282246310005", "371449635398431",
    "6011111111111117", "6011000990139424", "3056930009020004", "36227206271667",
    "3566002020360505", "6200000000000005", "4111111111111111", "4012888888881881",
    "5019717010103742", "6331101999990016", "6703444444444449", "4917610000000000003",
    "6759649826438453", "6771798021000008", "4000002500003155", "5425233430109903",
]  # fmt: skip
IINS = {13: ["4"], 15: ["34", "37"], 16: ["4", "51", "52", "53", "54", "55", "2221", "2720", "6011", "65", "3528", "62"],
        14: ["300", "36", "38"], 19: ["4", "62", "6759"], 12: ["6304", "6759", "5018", "5020", "5038", "6761"]}  # fmt: skip


def luhn_complete(prefix: str, length: int) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    return body + luhn.calc_check_digit(body)


generated = [luhn_complete(rng.choice(prefixes), length) for length, prefixes in IINS.items() for _ in range(6)]


def card_style(number: str) -> str:
    if len(number) == 15 and number[:2] in ("34", "37"):
        return rng.choice([number, f"{number[:4]} {number[4:10]} {number[10:]}", f"{number[:4]}-{number[4:10]}-{number[10:]}"])
    if len(number) == 16:
        return rng.choice([number, grouped(number, " "), grouped(number, "-"), grouped(number, " ")])
    return rng.choice([number, grouped(number, " ")])


for number in PUBLISHED_CARDS + generated:
    rows.append(row("card/published-or-generated", rng.choice(CARD_FRAMES), card_style(number), "card"))
    rows.append(row("card/published-or-generated", rng.choice(CARD_FRAMES), card_style(number), "card"))

# ------------------------------------------------------------------ e-mails
# RFC 6530/6531 and RFC 3696 style examples, the addresses in Wikipedia's "Email address"
# examples, and combinations of internationalised local parts and domains.
PUBLISHED_EMAILS = [
    "simple@example.com", "very.common@example.com", "x@example.com",
    "long.email-address-with-hyphens@and.subdomains.example.com", "user.name+tag+sorting@example.com",
    "name/surname@example.com", "example@s.example", "mailhost!username@example.org",
    "user%example.com@example.org", "user-@example.org", "fred~smith@example.com", "a=b@example.com",
    "customer/department=shipping@example.com", "$A12345@example.com", "!def!xyz%abc@example.com",
    "_somename@example.com", "I❤️CHOCOLATE@example.com", "Pelé@example.com", "δοκιμή@παράδειγμα.δοκιμή",
    "我買@屋企.香港", "二ノ宮@黒川.日本", "медведь@с-балалайкой.рф", "संपर्क@डाटामेल.भारत",
    "jeff@臺網中心.tw", "info@xn--d1acufc.xn--p1ai", "user@xn--mller-kva.de", "josé.garcía@correo.es",
    "müller@müller.de", "θσερ@εχαμπλε.ψομ", "用户@例子.广告", "ñandú@ejemplo.com.ar",
]  # fmt: skip
LOCALS = ["maria.lopez", "j_smith", "fan+starfall", "o'neil", "zoë", "ana-luísa", "k.tanaka", "first~last",
          "a/b", "x=y", "user.name+tag", "jürgen", "sørensen", "łukasz.w", "李雷", "αλέξης", "иван.петров"]  # fmt: skip
DOMAINS = ["example.com", "mail.example.co.uk", "example.org", "correo.example.es", "example.de", "例え.jp",
           "пример.рф", "xn--e1afmkfd.xn--p1ai", "bücher.example", "sub.domain.example.net", "example.io"]  # fmt: skip
emails = PUBLISHED_EMAILS + [f"{rng.choice(LOCALS)}@{rng.choice(DOMAINS)}" for _ in range(40)]
for email in emails:
    rows.append(row("email/published-or-combined", rng.choice(EMAIL_FRAMES), email, "email"))

# ------------------------------------------------------------------ secrets
# Provider token formats as the providers document them (prefix, alphabet, length); bodies
# are random. Plus the documentation's own sample values (AWS, jwt.io, Telegram Bot API).
ALNUM = string.ascii_letters + string.digits


def body(n: int, alphabet: str = ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def secrets() -> list[str]:
    b64url = ALNUM + "-_"
    return [
        "AKIAIOSFODNN7EXAMPLE", "AKIA" + body(16, string.ascii_uppercase + string.digits),
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", f"{rng.randint(10**8, 10**10)}:AA{body(33, b64url)}",
        "SG." + body(22, b64url) + "." + body(43, b64url), "hvs." + body(24), "hvs." + body(91, b64url),
        "hvb." + body(138, b64url), "ya29." + body(rng.randint(60, 180), b64url), "dp.st.dev." + body(43),
        "dp.st.prd." + body(43), "dp.ct." + body(43), "sk.eyJ1Ijoi" + body(40, b64url) + "." + body(22, b64url),
        "pk.eyJ1Ijoi" + body(40, b64url) + "." + body(22, b64url),
        "ghp_" + body(36), "gho_" + body(36), "github_pat_" + body(22) + "_" + body(59), "glpat-" + body(20, b64url),
        "xoxb-" + f"{rng.randint(10**10, 10**12)}-{rng.randint(10**10, 10**12)}-" + body(24),
        "xoxp-" + f"{rng.randint(10**10, 10**12)}-{rng.randint(10**10, 10**12)}-{rng.randint(10**10, 10**12)}-" + body(32, "0123456789abcdef"),
        "xapp-1-A" + body(10, string.ascii_uppercase + string.digits) + "-" + str(rng.randint(10**12, 10**13)) + "-" + body(64, "0123456789abcdef"),
        "sk_live_" + body(24), "sk_test_" + body(99), "rk_live_" + body(24), "pk_test_" + body(24), "whsec_" + body(32),
        "AIza" + body(35, b64url), "sk-proj-" + body(48, b64url), "sk-ant-api03-" + body(93, b64url) + "AA",
        "npm_" + body(36), "pypi-AgEIcHlwaS5vcmc" + body(60, b64url), "hf_" + body(34), "shpat_" + body(32, "0123456789abcdef"),
        "dckr_pat_" + body(27, b64url), "SK" + body(32, "0123456789abcdef"), "key-" + body(32, "0123456789abcdef"),
        "EAACEdEose0cBA" + body(100), "MTA" + body(23, b64url) + "." + body(6, b64url) + "." + body(38, b64url),
        "https://hooks.slack.com/services/T" + body(8, string.ascii_uppercase + string.digits) + "/B" + body(8, string.ascii_uppercase + string.digits) + "/" + body(24),
    ]  # fmt: skip


for _ in range(2):
    for token in secrets():
        kind = "url" if token.startswith("https://") else "secret"
        frame = rng.choice(URL_FRAMES if kind == "url" else SECRET_FRAMES)
        rows.append(row("secret/provider-format", frame, token, kind))

# ------------------------------------------------------------------ IPs (RFC 5737 / RFC 3849)
for value in ["192.0.2.1", "198.51.100.23", "203.0.113.254", "2001:db8::1", "2001:db8:0:0:1:0:0:1",
              "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "::ffff:192.0.2.47", "fe80::1ff:fe23:4567:890a"]:  # fmt: skip
    rows.append(row("ip/rfc-documentation", rng.choice(IP_FRAMES), value, "ip"))

# ------------------------------------------------------------------ URLs
SENSITIVE_URLS = [
    "https://shop.example.com/account?user=jane&session=8f3a9c", "https://example.com/reset#access_token=abc123def456ghi",
    "https://jane:hunter2@files.example.org/private", "https://docs.google.com/document/d/1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms/edit",
    "https://example.com/invite/7f9c2ba4e88f827d616045507605853e", "http://198.51.100.7/admin",
    "https://streamverse.example/verify/eyJ1c2VyIjoiamFuZSJ9.Zm9vYmFy", "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42s",
]  # fmt: skip
for url in SENSITIVE_URLS:
    rows.append(row("url/sensitive", rng.choice(URL_FRAMES), url, "url"))

# ------------------------------------------------------------------ negatives
# Things fans write that look like numbers or tokens but are not personal.
NEG: list[str] = []
for _ in range(12):
    body12 = "978" + "".join(rng.choice(string.digits) for _ in range(9))
    isbn13 = body12 + ean.calc_check_digit(body12)
    NEG.append(rng.choice(["ISBN {v}", "the novel (ISBN {v}) is out", "isbn: {v}", "ISBN-13 {v}"]).format(v=rng.choice([isbn13, isbn.format(isbn13)])))
    body9 = "".join(rng.choice(string.digits) for _ in range(9))
    NEG.append(f"ISBN-10 {isbn.format(body9 + isbn._calc_isbn10_check_digit(body9))}")
NEG += [
    "ISBN 978-3-16-148410-0", "ISBN 978-0-306-40615-7", "ISBN 0-306-40615-2", "ISBN 9780140449136",
    "https://docs.example.com/guide/setup#how-to-reset-your-password-on-the-mobile-app",
    "https://en.wikipedia.org/wiki/Starfall_Chronicles#Season_3_(2026)_and_the_cancelled_spinoff",
    "https://twitter.com/starfallshow/status/1798234567890123456", "https://forum.example.org/t/finale-theories/123456789012",
    "https://www.imdb.com/title/tt0903747/", "https://youtu.be/dQw4w9WgXcQ", "https://github.com/rasahq/rasa/issues/12345",
    "https://help.streamverse.example/articles/360012345678-Playback-issues", "www.example.com/news/2026/11/22/finale-recap",
    "S02E05 at 10:30 on 2026-11-22", "episode 1x07 aired 22/11/2026", "le 22.11.2026 à 20h30", "am 03.04.2026 um 19:45 Uhr",
    "it costs €1.299,00 now", "price went up to $12.99/month", "1 299 kr per year", "R$ 49,90 por mês", "¥1,500 for the artbook",
    "order 100234567 never arrived", "pedido nº 4500123456 no llegó", "Bestellnummer 30012345678", "commande n° 123456789 pas reçue",
    "ticket #20261122-0042 still open", "tracking 1Z999AA10123456784 not moving", "invoice 2026-000123",
    "version 3.10.2 on Android 14", "firmware 4.2.1.0", "build 22621.2861", "1920x1080 at 60fps", "3840 x 2160 HDR",
    "1,234,567 views in a day", "score was 3-1 then 4-2", "from 1999-2004 it was great", "season 1 (2019) to season 4 (2023)",
    "I waited 45 minutes", "rated 9/10", "top 10 of 2025", "at 22:05:11 it froze", "we're 12,500 members now",
    "room 1204, floor 12", "Catalog no. 5021732", "postcode 1012 AB", "ZIP 90210", "call of duty 2", "area 51",
    "the 100 rewatch", "1984 by Orwell", "route 66", "Blink-182 live", "my 2 cents", "Apollo 13", "iPhone 15 Pro Max",
    "RTX 4090", "PS5 model CFI-1216A", "Windows 10.0.19045", "error 0x80070005", "code ERR-4012", "room 101",
]  # fmt: skip
for text in NEG:
    rows.append({"text": text, "expected": text, "part": "negative/hand-written"})

OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
print(f"{len(rows)} lines -> {OUT.relative_to(HERE.parents[1])}")
