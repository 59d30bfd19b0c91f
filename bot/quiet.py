"""Keeps Rasa and TensorFlow silent and offline in every process the product starts.

A privacy product sends nothing anywhere (no telemetry) and logs no message text; Rasa and
TensorFlow are chatty at INFO, so they are held at WARNING or above.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

import structlog

QUIET_ENVIRONMENT = {
    "RASA_TELEMETRY_ENABLED": "false",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "LOG_LEVEL": "WARNING",
    "LOG_LEVEL_LIBRARIES": "ERROR",
    "PYTHONWARNINGS": "ignore",
    "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
}


def quiet_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for child processes (e.g. `rasa train`) with the quiet settings."""
    merged = dict(os.environ if base is None else base)
    merged.update(QUIET_ENVIRONMENT)
    return merged


def quiet_rasa() -> None:
    """Applies the quiet settings to this process before Rasa is imported."""
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    os.environ["RASA_TELEMETRY_ENABLED"] = "false"
    import sanic  # noqa: F401  # Rasa imports it anyway; on import it re-enables DeprecationWarnings

    warnings.filterwarnings("ignore")
    # Rasa 3.6 logs through structlog, which by default prints every event, message text
    # included, to standard output. Keep only warnings and errors, on standard error.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    for noisy in ("rasa", "tensorflow", "absl", "apscheduler", "sanic", "matplotlib", "h5py", "numexpr"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
