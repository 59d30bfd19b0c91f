"""Nothing leaves the model server even when the operator's environment forgets
RASA_TELEMETRY_ENABLED=false: the channel's import turns telemetry off for the rest of the
process and replaces the Sentry client Rasa's CLI started with one that has nowhere to send."""

from __future__ import annotations

import pytest
import sentry_sdk


def test_telemetry_and_crash_reports_are_off_after_the_channel_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    import rasa.telemetry

    from addons.quiet import quiet_server

    monkeypatch.setenv("RASA_TELEMETRY_ENABLED", "true")  # the forgetful operator
    # A key of our own: the one in Rasa's wheel must not be armed even in a test process.
    monkeypatch.setenv("RASA_EXCEPTION_WRITE_KEY", "0@example.invalid")
    rasa.telemetry.initialize_error_reporting()  # what `rasa run` does before it imports us
    assert sentry_sdk.Hub.current.client is not None and sentry_sdk.Hub.current.client.dsn
    quiet_server()
    client = sentry_sdk.Hub.current.client
    assert client is None or not client.dsn
    assert not rasa.telemetry.is_telemetry_enabled()
