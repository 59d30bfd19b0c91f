"""Model-independent checks on what a fan wrote.

"Am I talking to a bot?" must always get a truthful answer, even when the model
misreads the question, so the check is plain patterns, outside the model. The same
goes for what must never happen by a guess: an action on words about another service's
data, or a pending yes/no question settled by "maybe".
"""

from __future__ import annotations

import re
from typing import Optional

_YOU = r"(?:you|u|ya|thou)"
_THIS = r"(?:you|u|ya|this|it|that)"
_BE = r"(?:are|r|is)"
_BOTLIKE = (
    r"(?:a\s+|an\s+|some\s+(?:kind|sort)\s+of\s+|actually\s+|really\s+|just\s+)*"
    r"(?:bot|robot|chat\s*bot|ai|a\.i\.?|machine|computer|program|automated|automatic|auto[- ]?reply|script|llm|gpt|artificial)"
)
_HUMANLIKE = (
    r"(?:a\s+|an\s+|actual\s+|actually\s+|real\s+|really\s+|live\s+|living\s+|genuine\s+)*"
    r"(?:human(?:\s+being)?|person|people|humans|agent|operator|staff|somebody|someone|man|woman|guy|girl|mod(?:erator)?)"
)

_PATTERNS = [
    # "are you a bot", "is this an AI", "is this automated"
    rf"\b{_BE}\s+{_THIS}\s+(?:even\s+|really\s+|actually\s+)?{_BOTLIKE}\b",
    # "r u human", "are you a real person", "are you real"
    rf"\b{_BE}\s+{_YOU}\s+(?:even\s+|really\s+|actually\s+)?(?:{_HUMANLIKE}|real\b)",
    # "am I talking/chatting/speaking to a bot / a real person", "do i talk to a machine here",
    # "did i just chat with an ai", "have i been texting a robot"
    rf"\b(?:am|m|do|did|have|was)\s+i\s+(?:\w+\s+)?(?:talk|chat|speak|text|messag|writ|been\s+talk|been\s+chatt|been\s+text)\w*\s+(?:to\s+|with\s+)?(?:{_BOTLIKE}|{_HUMANLIKE})\b",
    # "is it a machine i'm talking to", "a bot that i'm chatting with?"
    rf"\b{_BOTLIKE}\s+(?:that\s+)?(?:i'?m|i\s+am|im)\s+(?:talking|chatting|speaking|texting|writing)\b",
    # "is a machine answering me", "is some program writing these"
    rf"\b(?:is|are)\s+(?:there\s+)?(?:a\s+|an\s+|some\s+)?{_BOTLIKE}\s+(?:\w+\s+)?(?:typing|writing|answering|replying|responding|talking|chatting|behind)\b",
    # "is a real person typing/reading/answering these"
    rf"\b(?:is|are)\s+(?:there\s+)?{_HUMANLIKE}\s+(?:\w+\s+)?(?:typing|writing|answering|replying|reading|responding|behind|on\s+the\s+other\s+end)",
    # "human or bot?", "bot or not"
    rf"\b(?:{_BOTLIKE})\s+or\s+(?:{_HUMANLIKE}|not)\b",
    rf"\b(?:{_HUMANLIKE})\s+or\s+(?:{_BOTLIKE})\b",
    # "who am I talking to", "who is replying"
    r"\bwho\s+(?:am\s+i|i'?m)\s+(?:talking|chatting|speaking)\s+(?:to|with)\b",
    r"\bwho(?:'s|\s+is)\s+(?:typing|replying|answering|writing)\b",
    # "if you're an AI", "prove that you're a person", "you are a real human?",
    # "ur not a real person right?", "you aren't human, are you", "u r not a bot?"
    rf"\b(?:you'?re|you\s+are|u\s+r|ur|youre|you\s+aren'?t|u\s+aren'?t|you\s+r)\s+(?:not\s+|even\s+|really\s+|actually\s+|just\s+|definitely\s+|surely\s+)*(?:{_BOTLIKE}|{_HUMANLIKE})\b",
    # "you a bot?", "u human?" (no verb, a question on its own)
    rf"^\s*(?:you|u|ya)\s+(?:{_BOTLIKE}|{_HUMANLIKE})\s*\??\s*$",
    # "do you consider yourself a bot", "would you call yourself human"
    rf"\b(?:consider|call|think\s+of|describe)\s+yourself\s+(?:to\s+be\s+|as\s+)?(?:{_BOTLIKE}|{_HUMANLIKE})\b",
    # "what are you?", "what r u"
    r"^\s*what\s+(?:are|r)\s+(?:you|u)\s*\??\s*$",
]
_COMPILED = re.compile("|".join(f"(?:{pattern})" for pattern in _PATTERNS), re.IGNORECASE)


def asks_if_human(text: str) -> bool:
    """True when the fan asks whether they are talking to a bot or a person."""
    return _COMPILED.search(" ".join(text.split())) is not None


_YES_WORDS = (
    r"y|ye|yes|yess|yea|yeah|yep|yup|ya|yah|sure|ok|okay|okey|k|kk|alright|all right|please|pls|plz|"
    r"yes please|yes pls|sure thing|of course|definitely|absolutely|do it|go ahead|go for it|please do|"
    r"si|sí|oui|ja|sim|はい|sounds good|that would be great|i do|i would|yes i do|yes i would|yes do it|ok do it|yes thanks|yes thank you"
)
_NO_WORDS = (
    r"n|no|nope|nah|na|no thanks|no thank you|not now|not really|no need|dont|don't|do not|never mind|nevermind|"
    r"non|nein|não|nao|いいえ|cancel|stop|no i don't|no i dont|i'm good|im good|i'm fine|im fine|all good|no it's fine|no its fine"
)
_YES = re.compile(rf"^(?:{_YES_WORDS})(?:\s+(?:{_YES_WORDS}))*$")
_NO = re.compile(rf"^(?:{_NO_WORDS})(?:\s+(?:{_NO_WORDS}))*$")
#: Emoji a fan answers a yes/no question with (skin-tone and variation selectors are dropped first).
_YES_EMOJI = frozenset("👍👌✅✔☑🙆💯🆗🙏😊🙂😀👏")
_NO_EMOJI = frozenset("👎❌✖🙅⛔🚫")
_MODIFIERS = re.compile("[\U0001f3fb-\U0001f3ff\ufe0f\ufe0e\u200d]")


#: Replies to a yes/no question that are neither: asked once more, never taken as a no.
_UNSURE = re.compile(
    r"\b(?:maybe|mayb|mabye|perhaps|possibly|idk|idc|dunno|donno|unsure|undecided|hmm+|hm+|"
    r"not\s+(?:so\s+|too\s+|really\s+|quite\s+|completely\s+|100%?\s+)?sure|"
    r"(?:i\s+)?(?:don'?t|dont|do\s+not)\s+know|no\s+idea|not\s+certain|can'?t\s+decide|"
    r"might|kinda|kind\s+of|sort\s+of|50\s*/\s*50|either\s+way|who\s+knows)\b",
    re.IGNORECASE,
)
_YES_TOKENS = frozenset({"y", "yes", "yeah", "yep", "yup", "yea", "ya", "sure", "ok", "okay", "k", "si", "sí", "oui", "ja", "sim"})
_NO_TOKENS = frozenset({"n", "no", "nope", "nah", "na", "non", "nein", "não", "nao", "never"})


def unclear_answer(text: str) -> bool:
    """A reply that hedges ("maybe", "not sure", "idk") or says both ("no, yes"): the
    question is asked once more rather than settled either way."""
    if _UNSURE.search(text):
        return True
    words = re.sub(r"[^\w'\s]", " ", text.lower()).split()
    return len(words) <= 8 and bool(_YES_TOKENS.intersection(words)) and bool(_NO_TOKENS.intersection(words))


def yes_or_no(text: str) -> Optional[bool]:
    """True for a plain yes (in words or emoji), False for a plain no, None for anything else."""
    bare = _MODIFIERS.sub("", text).strip()
    symbols = {char for char in bare if not char.isspace()}
    if symbols and symbols <= _YES_EMOJI:
        return True
    if symbols and symbols <= _NO_EMOJI:
        return False
    words = " ".join(re.sub(r"[^\w'\s]", " ", bare.lower()).split())
    if _YES.match(words):
        return True
    if _NO.match(words):
        return False
    return None


_UPSET = re.compile(
    r"\b(?:furious|angry|mad|pissed|livid|outraged|annoyed|frustrat\w*|fed up|sick of|tired of|unacceptable|ridiculous|"
    r"disgrace\w*|scam\w*|rip[- ]?off|worst|terrible|awful|useless|garbage|trash|joke|wtf|hate)\b",
    re.IGNORECASE,
)


def sounds_upset(text: str) -> bool:
    """A complaint riding along a question ("charged twice ... I am furious")."""
    return _UPSET.search(text) is not None


# Actions on words are for this assistant and the fan's data here. Words that name another
# service, device, institution or thing ("wipe my laptop", "what does my bank know about
# me", "export my contacts from my mail app") are someone else's business: no ticket, no
# export, no notice, no erasure request, not even an ask-back. Written for this project;
# Discord and Slack are absent on purpose (the assistant lives there).
_ELSEWHERE = re.compile(
    r"\b(?:"
    # companies and services
    r"google|gmail|youtube|apple|icloud|itunes|facebook|fb|meta|instagram|insta|whatsapp|messenger|tiktok|"
    r"snapchat|snap|twitter|reddit|linkedin|pinterest|tumblr|amazon|alexa|siri|netflix|hulu|disney\+?|"
    r"prime\s+video|spotify|microsoft|outlook|hotmail|onedrive|windows|excel|dropbox|yahoo|paypal|venmo|"
    r"uber|lyft|airbnb|ebay|zoom|skype|telegram|twitch|steam|playstation|psn|xbox|nintendo|samsung|"
    r"android|chrome|firefox|safari|opera|bing|duckduckgo|tinder|bumble|fitbit|garmin|"
    # devices and storage
    r"(?:smart\s*|cell\s*|mobile\s+)?phones?(?!\s*(?:number|no\b|#))|iphone|smartphone|laptop|computer|pc|macbook|mac|"
    r"desktop|tablet|ipad|kindle|cell|(?:hard|external|usb|thumb|flash)\s*(?:drives?|disks?)|fitness\s+tracker|harddrive|disk|ssd|usb|thumb\s*drive|flash\s*drive|"
    r"sd\s*card|memory\s*card|router|modem|printer|camera|camera\s*roll|smart\s*tv|tv|television|car|"
    r"smartwatch|console|wi-?fi|hotspot|"
    # browsers and the things on a computer
    r"browser|browsing|cookies?|cache|search\s+history|bookmarks?|tabs|incognito|"
    r"photos?|pictures?|pics|selfies|files|folders?|documents?|docs|downloads|spreadsheets?|sheets?|"
    r"contacts|address\s+book|calendar|inbox|e-?mails|mails|mailbox|voicemails?|texts|sms|"
    r"text\s+messages|call\s+log|resume|cv|notes\s+app|gallery|recycle\s+bin|trash\s+can|"
    # institutions and other people's businesses
    r"banks?|banking|credit\s+union|insurer|insurance|clinic|doctor|hospital|pharmacy|employer|boss|"
    r"school|university|college|landlord|government|dmv|irs|tax\s+office|airlines?|card\s+company|hotel|isp|"
    r"internet\s+provider|phone\s+company|carrier|electric(?:ity)?\s+company|utility|gym|dentist"
    r")\b",
    re.IGNORECASE,
)
#: Words that put the request back here, on this assistant and what it holds.
_HERE = re.compile(
    r"\b(?:streamverse|here|"
    r"(?:this|the|our)\s+(?:bot|assistant|server|chat|community|conversation|channel|fandom|fan\s*club|workspace)|"
    r"(?:you|u)\s+(?:have|hold|keep|kept|store|stored|save|saved|know|collect|collected|log|logged|record|recorded|got|remember)|"
    r"(?:your|ur)\s+(?:logs?|records?|database|db|servers?|system|side|end|memory|storage|transcripts?)|"
    r"(?:with|to|from)\s+(?:you|u)\b(?!\s+(?:my|the|a)\b)|"
    r"(?:do|does|did|will|would)\s+(?:you|u)\s+(?:sell|share|give|pass|send|hand)\s+(?:my|our|any|the)?\s*(?:data|info|information|details|messages)"
    r")\b",
    re.IGNORECASE,
)


def about_elsewhere(text: str) -> bool:
    """True when the words name another service, device or thing and nothing ties them to
    this assistant: then words never act (nor ask back) on the fan's data here."""
    return _ELSEWHERE.search(text) is not None and _HERE.search(text) is None
