"""Local stand-ins for Slack and Discord, as strict as the platforms, for tests and offline trials.

Installed with the product because users run them too: `python -m standins.slack --port 3001`,
`python -m standins.discord --port 3002`. Not imported by the product's runtime code.
"""
