"""A local stand-in for Slack: Web API, Socket Mode, Events API (HTTP) and response URLs.

Why: the Slack connector is tested with the real slack-bolt and slack-sdk, which only need
their URLs pointed here (`AsyncWebClient(base_url=standin.api_base_url)`; Socket Mode gets
its ws:// URL from `apps.connections.open`). Users can also try the bot offline with it:
`python -m standins.slack --port 3001`.

What the bot sends is recorded in `sent`, every Web API call in `calls`. Fans' and
moderators' activity is delivered with `send_dm`, `send_mention`, `send_channel_message`,
`send_command` and `click_button`, over the Socket Mode websocket or as signed HTTP POSTs.
Shapes follow the installed slack_sdk / slack_bolt sources and Slack's documentation.
Nothing here logs message text at INFO or above.

One concern per module: `state` (users, channels, history), `webapi` (the Web API and
response URLs), `socket_mode`, `events` (acting as people), `delivery` (socket or signed HTTP,
redelivery), `control` (the curl API), `cli` (the command line), `server` (the class).
"""

from .model import Delivery, SentMessage
from .server import SlackStandIn

__all__ = ["Delivery", "SentMessage", "SlackStandIn"]
