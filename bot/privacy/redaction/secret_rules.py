"""Provider token formats: a documented rule set, one entry per provider format.

Each rule is written from the provider's own documentation of its token format (prefix,
alphabet, length) and cross-checked against the public rule sets of secret scanners
(gitleaks, MIT; detect-secrets, Apache-2.0); no rule text is copied from them. Add a rule
with its provider, a link-free description and a test in tests/unit/test_redact_formats.py.

A match is the start of a token: `secrets.find` extends it over the rest of the token's
characters, so a token is always replaced whole (never `[PHONE]:[SECRET]`).
"""

from __future__ import annotations

import re

#: (provider and format, regular expression). Keep the most specific prefixes first.
RULES: tuple[tuple[str, str], ...] = (
    ("AWS access key id (AKIA, ASIA, ... + 16 upper-case alphanumerics)",
     r"(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    ("GitHub tokens (ghp_, gho_, ghu_, ghs_, ghr_; fine-grained github_pat_)",
     r"gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{30,255}"),
    ("GitLab tokens (glpat-, gldt-, glrt-, glptt-, glsoat-)", r"gl(?:pat|dt|rt|ptt|soat|cbt|imt)-[A-Za-z0-9_-]{20,}"),
    ("Slack tokens (xoxb-, xoxp-, xoxa-, xoxo-, xoxs-, xoxr-, xoxe-) and app tokens (xapp-)",
     r"xox[abposre](?:\.[A-Za-z0-9]+)?-[A-Za-z0-9-]{10,}|xapp-\d-[A-Za-z0-9-]{10,}"),
    ("Stripe keys (sk_, pk_, rk_ + live/test) and webhook secrets (whsec_)",
     r"(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9+/=]{20,}"),
    ("SendGrid API key: SG. + 22 + . + 43 base64url characters", r"SG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{30,50}"),
    ("HashiCorp Vault tokens: hvs. (service), hvb. (batch), hvr. (recovery)", r"hv[sbr]\.[A-Za-z0-9_-]{20,}"),
    ("Google OAuth access token (ya29.) and refresh token (1//0)", r"ya29\.[A-Za-z0-9_-]{20,}|1//0[A-Za-z0-9_-]{30,}"),
    ("Google API key (AIza + 35)", r"AIza[A-Za-z0-9_-]{35}"),
    ("Doppler tokens: dp.st. (service), dp.ct. (CLI), dp.sa., dp.scim., dp.audit., dp.pt.",
     r"dp\.(?:st|ct|sa|scim|audit|pt)\.(?:[A-Za-z0-9_-]{2,35}\.)?[A-Za-z0-9]{40,}"),
    ("Mapbox tokens: sk.eyJ (secret), pk.eyJ (public), tk.eyJ (temporary)",
     r"[spt]k\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
    ("Telegram Bot API token: bot id, colon, AA + 33 base64url", r"\d{8,10}:AA[A-Za-z0-9_-]{30,34}"),
    ("JSON Web Token (header.payload.signature, base64url)", r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
    ("Anthropic (sk-ant-) and OpenAI (sk-, sk-proj-, sk-svcacct-, sk-admin-) keys", r"sk-[A-Za-z0-9_-]{20,}"),
    ("npm (npm_), PyPI (pypi-AgEI...), Hugging Face (hf_) tokens",
     r"npm_[A-Za-z0-9]{30,}|pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{40,}|hf_[A-Za-z0-9]{30,}"),
    ("Shopify (shpat_, shpca_, shppa_, shpss_), Docker Hub (dckr_pat_), DigitalOcean (dop_v1_)",
     r"shp(?:at|ca|pa|ss)_[A-Fa-f0-9]{32}|dckr_pat_[A-Za-z0-9_-]{20,}|do[opr]_v1_[a-f0-9]{64}"),
    ("Twilio API key (SK + 32 hex) and account SID (AC + 32 hex)", r"(?:SK|AC)[0-9a-f]{32}(?![A-Za-z0-9])"),
    ("Mailgun key (key- + 32 hex)", r"key-[0-9a-f]{32}(?![A-Za-z0-9])"),
    ("Facebook / Meta access token (EAA...)", r"EAA[A-Za-z0-9]{30,}"),
    ("Square (sq0atp-, sq0csp-, EAAA), Linear (lin_api_), Notion (secret_, ntn_), Postman (PMAK-), New Relic (NRAK-)",
     r"sq0(?:atp|csp)-[A-Za-z0-9_-]{22,}|lin_api_[A-Za-z0-9]{40}|(?:secret|ntn)_[A-Za-z0-9]{43,}"
     r"|PMAK-[a-f0-9]{24}-[a-f0-9]{34}|NRAK-[A-Z0-9]{27}"),
    ("Atlassian API token (ATATT3...)", r"ATATT3[A-Za-z0-9_=-]{100,}"),
)  # fmt: skip

#: One alternation: every rule starts with a literal or a digit, so the engine skips fast.
PATTERN = re.compile("|".join(f"(?:{regex})" for _, regex in RULES))
