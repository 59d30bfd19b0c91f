"""files.uploadV2 as slack-sdk does it: files.getUploadURLExternal, a POST of the bytes to the
returned URL, then files.completeUploadExternal (slack_sdk/web/async_client.py
`files_upload_v2`, steps 1-3; docs.slack.dev/reference/methods/files.getUploadURLExternal)."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from .model import SentMessage, _SlackError


class _FilesMixin:
    """Slack's external upload: URL, bytes, completion that shares the files in a channel."""

    def _files_get_upload_url_external(self, args: dict[str, Any]) -> dict[str, Any]:
        filename, length = str(args.get("filename") or ""), str(args.get("length") or "")
        if not filename or not length.isdigit():  # both required by the method
            raise _SlackError("invalid_arguments")
        file_id = "F" + uuid.uuid4().hex[:10].upper()
        self._uploads[file_id] = {"filename": filename, "length": int(length), "data": None}
        return {"upload_url": f"{self.url}/upload/v1/{file_id}", "file_id": file_id}

    async def _handle_upload(self, request: web.Request) -> web.Response:
        upload = self._uploads.get(request.match_info["file_id"])
        if upload is None:
            return web.Response(status=404, text="not found")
        upload["data"] = await request.read()
        return web.Response(text=f"OK - {len(upload['data'])}")

    def _files_complete_upload_external(self, args: dict[str, Any]) -> dict[str, Any]:
        files = args.get("files")
        if not isinstance(files, list) or not files:
            raise _SlackError("invalid_arguments")
        shared = []
        for item in files:
            upload = self._uploads.get(str(item.get("id")))
            if upload is None or upload["data"] is None:
                raise _SlackError("file_not_found")  # never uploaded: completion has nothing to share
            shared.append({"id": item["id"], "title": item.get("title") or upload["filename"], "name": upload["filename"],
                           "size": upload["length"], "content": upload["data"].decode("utf-8", "replace")})
        channel = args.get("channel_id")
        if channel:
            channel = self._channel_arg({"channel": channel})
            self._require_postable(channel)
            self._record_sent(SentMessage("files.completeUploadExternal", channel, args.get("initial_comment"),
                                          thread_ts=args.get("thread_ts"), raw=args, files=shared))
        return {"files": [{k: v for k, v in f.items() if k != "content"} for f in shared]}
