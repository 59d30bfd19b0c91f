"""Keeps Rasa and TensorFlow silent and offline in the model server and in training.

A privacy product sends nothing anywhere (no telemetry, no crash reports) and logs no message
text; Rasa and TensorFlow are chatty at INFO, so they are held at WARNING or above.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

QUIET_ENVIRONMENT = {
    "RASA_TELEMETRY_ENABLED": "false",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "LOG_LEVEL": "WARNING",
    "LOG_LEVEL_LIBRARIES": "ERROR",
    "PYTHONWARNINGS": "ignore",
    "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
}
_NOISY = ("rasa", "tensorflow", "absl", "apscheduler", "sanic", "matplotlib", "h5py", "numexpr")


def quiet_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for child processes (e.g. `rasa train`) with the quiet settings."""
    merged = dict(os.environ if base is None else base)
    merged.update(QUIET_ENVIRONMENT)
    return merged


def no_crash_reports() -> None:
    """When telemetry is on in `~/.config/rasa/global.yml` and RASA_TELEMETRY_ENABLED is unset,
    Rasa's CLI (`rasa.telemetry.initialize_error_reporting`) starts a Sentry client with the key
    shipped in the wheel, and an uncaught exception would be sent to sentry.io. A client without
    a DSN replaces it: nothing is ever sent, whatever the operator's environment says."""
    import sentry_sdk

    sentry_sdk.init(dsn=None, default_integrations=False)


def quiet_server() -> None:
    """For `rasa run`, which configured logging itself (from LOG_LEVEL) before importing us:
    telemetry calls made from now on are no-ops (`rasa.telemetry` reads the variable on every
    call, e.g. the server-start event sent after the channels are created), no crash reports,
    no Python warnings."""
    os.environ["RASA_TELEMETRY_ENABLED"] = "false"
    no_crash_reports()
    warnings.filterwarnings("ignore")
    for noisy in ("tensorflow", "absl", "matplotlib", "h5py", "numexpr"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def quiet_rasa() -> None:
    """For a process that imports Rasa itself (tests): the quiet settings before the import."""
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    os.environ["RASA_TELEMETRY_ENABLED"] = "false"
    import sanic  # noqa: F401  # Rasa imports it anyway; on import it re-enables DeprecationWarnings
    import structlog

    warnings.filterwarnings("ignore")
    # Rasa 3.6 logs through structlog, which by default prints every event, message text
    # included, to standard output. Keep only warnings and errors, on standard error.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.ERROR)
