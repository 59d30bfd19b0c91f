"""REST: interaction callbacks, follow-ups and the interaction webhook's messages."""

from __future__ import annotations

import logging
import time
from typing import Any, Optional

from aiohttp import web

from .model import EPHEMERAL, LOADING, ApiError, Json, _form_error, _Interaction

log = logging.getLogger("standins.discord")


class _InteractionsMixin:
    """REST: interaction callbacks, follow-ups and the interaction webhook's messages."""

    # ---------------------------------------------------------------- REST: interactions

    async def _callback(self, request: web.Request, body: Any, files: list[Json], interaction_id: str, token: str) -> Any:
        interaction = self._interactions.get(int(interaction_id))
        if interaction is None or interaction.token != token:
            raise ApiError(404, 10062, "Unknown interaction")
        if interaction.response_type is not None:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        if self.response_deadline is not None and time.monotonic() - interaction.created > self.response_deadline:
            log.info("interaction %s answered after the %.1fs deadline", interaction_id, self.response_deadline)
            raise ApiError(404, 10062, "Unknown interaction")
        body = body or {}
        kind = int(body.get("type") or 0)
        data = body.get("data") or {}
        message: Optional[Json] = None
        if kind == 4:  # CHANNEL_MESSAGE_WITH_SOURCE
            message = self._bot_message(interaction.channel_id, data, files, interaction=interaction)
            interaction.original_id = int(message["id"])
        elif kind == 5:  # DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE: a "thinking..." message
            flags = LOADING | (int(data.get("flags") or 0) & EPHEMERAL)
            message = self._bot_message(interaction.channel_id, {"content": "", "flags": flags}, [], interaction=interaction)
            interaction.original_id, interaction.loading = int(message["id"]), True
        elif kind in (6, 7):  # DEFERRED_UPDATE_MESSAGE / UPDATE_MESSAGE (components)
            if interaction.message_id is None:
                raise ApiError(400, 40060 if kind == 6 else 50035, "Interaction has no message to update")
            interaction.original_id = interaction.message_id
        elif kind not in (1, 8, 9, 10, 12):
            raise _form_error("type", "BASE_TYPE_CHOICES", "Value must be a valid interaction callback type.")
        interaction.response_type = kind
        if message is not None:
            self._store(message)
            if not message["flags"] & EPHEMERAL:
                await self._dispatch_if_connected("MESSAGE_CREATE", self._gateway_message(message))
        elif kind == 7 and interaction.original_id in self._messages:
            message = self._messages[interaction.original_id]
            self._edit(message, data, files)
            await self._dispatch_if_connected("MESSAGE_UPDATE", self._gateway_message(message))
        self._record("interaction_response", interaction.channel_id, data, message, files,
                     interaction_id=interaction.id, callback_type=kind,
                     message_id=interaction.original_id, raw=body)
        if request.query.get("with_response", "").lower() not in ("1", "true"):
            return None
        flags = int((message or {}).get("flags") or data.get("flags") or 0)
        answer: Json = {"interaction": {
            "id": str(interaction.id), "type": interaction.type,
            "response_message_loading": kind == 5, "response_message_ephemeral": bool(flags & EPHEMERAL),
        }}
        if interaction.original_id is not None and kind in (4, 5, 7):
            answer["interaction"]["response_message_id"] = str(interaction.original_id)
        if kind in (4, 5, 6, 7, 9):
            answer["resource"] = {"type": kind}
            if kind in (4, 7) and message is not None:
                answer["resource"]["message"] = message
        return answer

    def _interaction_by_token(self, app: str, token: str) -> _Interaction:
        if int(app) != self.app_id:
            raise ApiError(404, 10015, "Unknown Webhook")
        for interaction in self._interactions.values():
            if interaction.token == token:
                if time.monotonic() - interaction.created > 15 * 60:
                    raise ApiError(401, 50027, "Invalid Webhook Token")
                if interaction.response_type is None:
                    raise ApiError(404, 10015, "Unknown Webhook")  # no initial response yet
                return interaction
        raise ApiError(404, 10015, "Unknown Webhook")

    async def _post_followup(self, request: web.Request, body: Any, files: list[Json], app: str, token: str) -> Any:
        interaction = self._interaction_by_token(app, token)
        body = body or {}
        original = self._messages.get(interaction.original_id or 0)
        if interaction.loading and original is not None:
            # The first follow-up after a defer fills in the "thinking..." message (same id);
            # whether it is ephemeral was decided by the defer.
            interaction.loading = False
            self._edit(original, {**body, "flags": int(body.get("flags") or 0) & ~(LOADING | EPHEMERAL)}, files)
            message = original
            event = "MESSAGE_UPDATE"
        else:
            message = self._bot_message(interaction.channel_id, body, files, interaction=interaction)
            self._store(message)
            event = "MESSAGE_CREATE"
        self._record("followup", interaction.channel_id, body, message, files, interaction_id=interaction.id)
        if not message["flags"] & EPHEMERAL:
            await self._dispatch_if_connected(event, self._gateway_message(message))
        if request.query.get("wait", "").lower() in ("1", "true"):
            return message
        return None

    def _webhook_message(self, interaction: _Interaction, message_id: str) -> Json:
        target = interaction.original_id if message_id == "@original" else int(message_id)
        message = self._messages.get(target or 0)
        if message is None:
            raise ApiError(404, 10008, "Unknown Message")
        return message

    async def _get_webhook_message(self, request: web.Request, body: Any, files: list[Json], app: str, token: str,
                                   message_id: str) -> Json:
        return self._webhook_message(self._interaction_by_token(app, token), message_id)

    async def _patch_webhook_message(self, request: web.Request, body: Any, files: list[Json], app: str, token: str,
                                     message_id: str) -> Json:
        interaction = self._interaction_by_token(app, token)
        message = self._webhook_message(interaction, message_id)
        if int(message["id"]) == interaction.original_id:
            interaction.loading = False
        self._edit(message, body or {}, files)
        self._record("edit", int(message["channel_id"]), body or {}, message, files, interaction_id=interaction.id)
        if not message["flags"] & EPHEMERAL:
            await self._dispatch_if_connected("MESSAGE_UPDATE", self._gateway_message(message))
        return message

    async def _delete_webhook_message(self, request: web.Request, body: Any, files: list[Json], app: str, token: str,
                                      message_id: str) -> None:
        interaction = self._interaction_by_token(app, token)
        await self._delete(self._webhook_message(interaction, message_id))
        return None
