"""`python -m standins.slack`: see `standins.slack.cli`."""

from .cli import main

main()
