"""Moved to `standins.discord`; this name stays so existing imports keep working."""

from standins.discord import *  # noqa: F403 - the public names, listed in standins.discord.__all__
from standins.discord import __all__  # noqa: F401
