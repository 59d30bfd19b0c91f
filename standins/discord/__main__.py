"""`python -m standins.discord`: see `standins.discord.cli`."""

from .cli import main

raise SystemExit(main())
