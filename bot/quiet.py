"""Keeps Rasa and TensorFlow silent and offline in every process the bot starts.

A privacy product sends nothing anywhere (no telemetry) and logs no message text; Rasa and
TensorFlow are chatty at INFO, so their processes run with warnings and errors only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

QUIET_ENVIRONMENT = {
    "RASA_TELEMETRY_ENABLED": "false",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "LOG_LEVEL": "WARNING",
    "LOG_LEVEL_LIBRARIES": "ERROR",
    "PYTHONWARNINGS": "ignore",
    "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
}


#: What a Rasa child process may inherit: nothing else, so the master and pseudonym keys and
#: the platform tokens never reach the model's process (it needs none of them).
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR")


def quiet_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment for Rasa's child processes (`rasa run`, training): the few inherited
    variables above plus the quiet settings."""
    source = os.environ if base is None else base
    merged = {name: source[name] for name in INHERITED if name in source}
    merged.update(QUIET_ENVIRONMENT)
    return merged
