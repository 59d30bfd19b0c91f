"""`rasa run`: Rasa's own command line, unchanged, with one import made first.

skops (which stores the logistic regression) scans every loaded module the first time it is
imported; after TensorFlow is loaded that scan took about 5 s of the server's start, before
it, well under one (measured with `bench/model_costs.py`). `rasa run` imports TensorFlow
before any add-on is loaded, so this entry point imports skops first and then hands the
command line to `rasa.__main__.main`, exactly as the `rasa` script does.

Usage: `python -m addons.serve run --model ... --credentials ... --endpoints ...`
"""

from __future__ import annotations

import sys


def _refuse(line: str) -> None:
    print(line, file=sys.stderr)
    sys.exit(2)


def _check_environment() -> None:
    """The token and the idle limit, checked before Rasa starts: inside Rasa's server start a
    bad value is still one line, but Sanic prints a traceback after it."""
    import math
    import os

    if not os.environ.get("BOT_ENGINE_TOKEN", "").strip():
        _refuse("model server: BOT_ENGINE_TOKEN is not set: set it to the same secret as the bot's BOT_ENGINE_TOKEN")
    raw = os.environ.get("BOT_ENGINE_TRACKER_IDLE_SECONDS")
    try:
        seconds = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        _refuse(f"model server: BOT_ENGINE_TRACKER_IDLE_SECONDS must be a positive number of seconds, got {raw!r}")


def main() -> None:
    import warnings

    if sys.argv[1:2] == ["run"]:
        _check_environment()

    import sanic  # noqa: F401  # on import it turns DeprecationWarnings back on, whatever PYTHONWARNINGS says
    import skops.io  # noqa: F401  # before TensorFlow: see the module docstring

    warnings.filterwarnings("ignore")  # Rasa's and TensorFlow's import-time warnings: noise in the operator's log
    # Rasa shows every UserWarning "once" from its command line on; matplotlib (imported by Rasa)
    # raises pyparsing's, which are UserWarnings, on first use: have them now, silenced.
    import matplotlib.font_manager  # noqa: F401

    from rasa.__main__ import main as rasa_main

    sys.argv[0] = "rasa"
    rasa_main()


if __name__ == "__main__":
    main()
