"""Settings: defaults, then the TOML file, then `BOT_*` variables, then command-line flags.

Every key lives in a frozen dataclass below, so a typo or a bad value is caught at start-up
with one line naming the key. Secrets are never read from the file: only from the
environment (see `bot.privacy.secrets`).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

ENV_PREFIX = "BOT_"
#: `BOT_*` variables that are not settings; every other one that looks like a setting
#: (see `_check_unknown_env`) stops start-up, so a typo is never silently ignored.
OTHER_ENV = frozenset(
    {
        "BOT_CONFIG",  # the config file (load_config)
        "BOT_PSEUDONYM_KEY",  # secrets (bot/privacy/secrets.py)
        "BOT_MASTER_KEYS",
        "BOT_ENGINE_TOKEN",  # the model servers' shared secret (bot/engine/lifecycle.py)
        "BOT_ENGINE_TRACKER_IDLE_SECONDS",  # set by the bot for its model server child
        "BOT_TEST_POSTGRES_URL",  # the test suite's PostgreSQL server (tests/with_postgres.sh)
        "BOT_BENCH_POSTGRES_URL",  # the benchmarks' PostgreSQL server (bench/store_costs.py)
    }
)
DEFAULT_CONFIG_FILE = Path("config.toml")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class ConfigError(ValueError):
    """A bad setting; the message is one line naming the key."""


def _positive(value: Any) -> Optional[str]:
    return None if value > 0 else "must be greater than 0"


def _non_empty(value: Any) -> Optional[str]:
    return None if str(value).strip() else "must not be empty"


def _log_level(value: Any) -> Optional[str]:
    return None if value in LOG_LEVELS else f"must be one of {', '.join(LOG_LEVELS)}"


def _languages(value: Any) -> Optional[str]:
    codes = list(value) if isinstance(value, (list, tuple)) else None
    if not codes or not all(isinstance(c, str) and len(c.strip()) == 2 and c.strip().isalpha() for c in codes):
        return 'must be a non-empty list of two-letter language codes, such as ["en"]'
    return None


def _no_check(value: Any) -> Optional[str]:
    return None


def _one_of(*choices: str) -> Callable[[Any], Optional[str]]:
    def check(value: Any) -> Optional[str]:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


def _check(validator: Callable[[Any], Optional[str]], env: Optional[str] = None, **kwargs: Any) -> Any:
    """A dataclass field carrying its validator (and any platform-standard environment
    variable that also sets it), so the schema is one place."""
    return field(metadata={"check": validator, "env": env}, **kwargs)


@dataclass(frozen=True)
class AssistantSettings:
    name: str = _check(_non_empty, default="StreamVerse fan assistant")
    community: str = _check(_non_empty, default="StreamVerse")
    max_message_chars: int = _check(_positive, default=4000)
    fallbacks_before_offer: int = _check(_positive, default=2)
    conversation_idle_minutes: float = _check(_positive, default=30.0)
    #: A reply the platform keeps refusing for now (rate limit, outage) is retried this long, then dropped.
    reply_expiry_seconds: float = _check(_positive, default=300.0)
    #: Languages the model understands (ISO 639-1); other languages get an honest reply in theirs.
    languages: tuple[str, ...] = _check(_languages, default=("en",))


@dataclass(frozen=True)
class RasaSettings:
    project_dir: Path = _check(_non_empty, default=Path("rasa_project"))
    model_path: Path = _check(_non_empty, default=Path("rasa_project/models/fan.tar.gz"))
    #: Rasa's own virtual environment (Python 3.10, rasa==3.6.21): training and the embedded model server run there.
    environment: Path = _check(_non_empty, default=Path("rasa_project/.venv"))


def _server_url_ok(url: str) -> bool:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0 and not parts.query
    except ValueError:  # a port out of range, e.g. :99999
        return False


def _server_urls(value: Any) -> Optional[str]:
    urls = [value] if isinstance(value, str) else list(value)
    bad = [url for url in urls if url and not _server_url_ok(str(url))]
    if bad:
        return f"must be http:// or https:// URLs of model servers (bad: {bad[0]!r})"
    if len({str(url).rstrip("/") for url in urls}) != len(urls):
        return "lists a model server twice"
    return None


def _finite_positive(value: Any) -> Optional[str]:
    return None if 0 < value < float("inf") else "must be a finite number greater than 0"


def _optional_file(value: Any) -> Optional[str]:
    return None if not value or Path(value).is_file() else f"no such file: {value}"


def _port_or_zero(value: Any) -> Optional[str]:
    return None if 0 <= value < 65536 else "must be a TCP port (1-65535), or 0 for a free one"


@dataclass(frozen=True)
class EngineSettings:
    """The model servers (docs/model-server.md). Neither `url` nor `urls` set: the bot starts
    one as its child process on loopback. The shared secret comes from BOT_ENGINE_TOKEN only."""

    url: str = _check(_server_urls, default="")
    #: Several model servers: fans are spread over them by pseudonym (sticky), with failover.
    urls: tuple[str, ...] = _check(_server_urls, default=())
    #: A model answer slower than this gets the fan an honest error instead.
    timeout_seconds: float = _check(_finite_positive, default=10.0)
    #: Messages sent to one model server at once; more wait in the bot (a server works through
    #: one at a time, so more would only queue inside it, against the timeout).
    max_in_flight: int = _check(_positive, default=4)
    #: A message waiting longer than this for a place gets the honest error reply.
    queue_seconds: float = _check(_finite_positive, default=60.0)
    #: CA certificate(s) that signed the model servers' TLS certificates; empty: the system's.
    ca_file: str = _check(_optional_file, default="")
    #: The embedded server's loopback port; 0: a free one.
    port: int = _check(_port_or_zero, default=0)
    #: The embedded server must answer within this long after it starts, or it is restarted.
    start_timeout_seconds: float = _check(_positive, default=180.0)

    @property
    def servers(self) -> tuple[str, ...]:
        """Every configured server, `url` first; empty for the embedded default."""
        return tuple(dict.fromkeys(u.rstrip("/") for u in ((self.url,) if self.url else ()) + self.urls))


def _database_url(value: Any) -> Optional[str]:
    scheme = str(value).partition("://")[0]
    if not scheme or "://" not in str(value):
        return "must be a database URL such as sqlite:///.data/transcripts.db or postgresql://host/db"
    if not scheme.startswith(("sqlite", "postgresql")):
        return f"database {scheme!r} is not supported (use sqlite or postgresql)"
    return None


def _optional_database_url(value: Any) -> Optional[str]:
    return None if value == "" else _database_url(value)


@dataclass(frozen=True)
class StoreSettings:
    url: str = _check(_database_url, default="sqlite:///.data/transcripts.db")
    keys_url: str = _check(_optional_database_url, default="")
    #: Local file where transcript writes wait (encrypted with the master keys) while the
    #: database is down; written back in order when it answers again.
    spool_path: Path = _check(_non_empty, default=Path(".data/spool.db"))


def _phone_regions(value: Any) -> Optional[str]:
    from bot.privacy.redaction.phones import known_region

    unknown = [code for code in value if not known_region(code)]
    if not value or unknown:
        return f"must be a non-empty list of ISO 3166 region codes known to libphonenumber (unknown: {', '.join(map(str, unknown)) or 'none given'})"
    return None


def _default_phone_regions() -> tuple[str, ...]:
    from bot.privacy.redaction.phones import DEFAULT_REGIONS

    return DEFAULT_REGIONS


@dataclass(frozen=True)
class PrivacySettings:
    retention_days: float = _check(_positive, default=30.0)
    purge_interval_minutes: float = _check(_positive, default=60.0)
    #: Regions whose national phone formats minimization recognises ("+"/"00" numbers: all).
    phone_regions: tuple[str, ...] = _check(_phone_regions, default_factory=_default_phone_regions)
    #: "notice": transcripts are kept from the first message, the disclosure says so and how to
    #: stop it. "opt-in": nothing about a fan is stored until they say yes (`bot.consent`).
    consent: str = _check(_one_of("notice", "opt-in"), default="notice")
    #: Who answers for the data (GDPR Art. 13(1)(a)-(b)): required once a platform is served
    #: (`bot.privacy.notice.require_contacts`); the console shows labelled placeholders.
    controller: str = _check(_no_check, default="")
    contact: str = _check(_no_check, default="")
    dpo_contact: str = _check(_no_check, default="")
    #: Where a fan may complain (Art. 13(2)(d)).
    supervisory_authority: str = _check(
        _non_empty, default="the data-protection supervisory authority where you live or work"
    )


def _desk(value: Any) -> Optional[str]:
    if value == "console" or str(value).startswith(("slack:", "discord:")) and str(value).partition(":")[2]:
        return None
    return 'must be "console", "slack:CHANNEL_ID" or "discord:CHANNEL_ID"'


@dataclass(frozen=True)
class HandoffSettings:
    desk: str = _check(_desk, default="console")
    moderators: tuple[str, ...] = _check(_no_check, default=())
    claim_timeout_minutes: float = _check(_positive, default=10.0)
    history_turns: int = _check(_positive, default=10)
    #: A claimed ticket without a word from its moderator this long: the desk and the fan are told once.
    claimed_silence_minutes: float = _check(_positive, default=15.0)


def _http_url(value: Any) -> Optional[str]:
    return None if str(value).startswith(("http://", "https://")) else "must be an http:// or https:// URL"


def _ws_url(value: Any) -> Optional[str]:
    return None if str(value).startswith(("ws://", "wss://")) else "must be a ws:// or wss:// URL"


def _port(value: Any) -> Optional[str]:
    return None if 0 < value < 65536 else "must be a TCP port (1-65535)"


def _path(value: Any) -> Optional[str]:
    return None if str(value).startswith("/") else 'must start with "/"'


@dataclass(frozen=True)
class SlackSettings:
    """Tokens come from SLACK_BOT_TOKEN, SLACK_APP_TOKEN and SLACK_SIGNING_SECRET only."""

    #: false: this worker does not serve Slack even with its tokens set (`bot run --no-slack`).
    enabled: bool = _check(_no_check, default=True)
    mode: str = _check(_one_of("socket", "http"), default="socket")
    http_port: int = _check(_port, default=3000)
    http_path: str = _check(_path, default="/slack/events")
    api_base_url: str = _check(_http_url, env="SLACK_API_BASE_URL", default="https://slack.com/api/")
    #: Members of this user group (S...) may work the Slack desk; empty: members of the desk channel.
    moderator_usergroup: str = _check(_no_check, default="")
    rate_limit_retries: int = _check(_positive, default=3)


@dataclass(frozen=True)
class DiscordSettings:
    """The token comes from DISCORD_TOKEN only."""

    #: false: this worker does not serve Discord even with its token set (`bot run --no-discord`).
    enabled: bool = _check(_no_check, default=True)
    api_base_url: str = _check(_http_url, env="DISCORD_API_BASE_URL", default="https://discord.com/api/v10")
    gateway_url: str = _check(_ws_url, env="DISCORD_GATEWAY_URL", default="wss://gateway.discord.gg")
    #: Sync slash commands to this guild (instant); empty: globally (Discord may take up to an hour).
    guild_id: str = _check(_no_check, default="")
    #: Members with this role id may work the Discord desk.
    moderator_role: str = _check(_no_check, default="")


@dataclass(frozen=True)
class SecretsSettings:
    dev_keys_file: Path = _check(_non_empty, default=Path(".data/dev-keys.env"))


@dataclass(frozen=True)
class HealthSettings:
    """`/healthz` and `/readyz` over HTTP for supervisors and load balancers (`bot run` with platforms)."""

    #: 0: off.
    port: int = _check(_port_or_zero, default=0)
    host: str = _check(_non_empty, default="127.0.0.1")


@dataclass(frozen=True)
class LoggingSettings:
    level: str = _check(_log_level, default="WARNING")


@dataclass(frozen=True)
class Config:
    assistant: AssistantSettings = field(default_factory=AssistantSettings)
    rasa: RasaSettings = field(default_factory=RasaSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    handoff: HandoffSettings = field(default_factory=HandoffSettings)
    slack: SlackSettings = field(default_factory=SlackSettings)
    discord: DiscordSettings = field(default_factory=DiscordSettings)
    secrets: SecretsSettings = field(default_factory=SecretsSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)


def _sections() -> dict[str, type]:
    """Section name -> its dataclass (annotations are strings under `from __future__`)."""
    return {f.name: globals()[str(f.type)] for f in dataclasses.fields(Config)}


def _coerce(key: str, raw: Any, annotation: Any) -> Any:
    """Turns a TOML or string value into the field's type, or says why it cannot."""
    if annotation == "tuple[str, ...]":
        items = _list_items(key, raw) if isinstance(raw, str) else raw
        if not isinstance(items, list | tuple) or not all(isinstance(item, str) for item in items):
            raise ConfigError(f'{key}: expected a list of strings like a,b or ["a","b"], got {raw!r}')
        return tuple(item.strip() for item in items if item.strip())
    kind = {"str": str, "int": int, "float": float, "bool": bool, "Path": Path}.get(
        annotation if isinstance(annotation, str) else annotation.__name__
    )
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "1", "yes", "false", "0", "no"):
            return raw.lower() in ("true", "1", "yes")
        raise ConfigError(f"{key}: expected true or false, got {raw!r}")
    if kind in (int, float):
        if isinstance(raw, bool):
            raise ConfigError(f"{key}: expected a number, got {raw!r}")
        try:
            number = kind(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected {'an integer' if kind is int else 'a number'}, got {raw!r}") from None
        if kind is int and isinstance(raw, float) and raw != number:
            raise ConfigError(f"{key}: expected an integer, got {raw!r}")
        return number
    if not isinstance(raw, str):
        raise ConfigError(f"{key}: expected a string, got {raw!r}")
    return Path(raw) if kind is Path else raw


def _list_items(key: str, raw: str) -> Any:
    """A list setting given as text (`--set`, environment): `a,b` or a TOML/JSON list
    `["a","b"]`; anything half-way (brackets or quotes in an item) would become a wrong id
    silently, so it is refused."""
    if raw.strip().startswith("["):
        try:
            return tomllib.loads(f"value = {raw.strip()}")["value"]
        except tomllib.TOMLDecodeError:
            raise ConfigError(f'{key}: expected a list like a,b or ["a","b"], got {raw!r}') from None
    items = raw.split(",")
    if any(mark in item for item in items for mark in '[]"\''):
        raise ConfigError(f'{key}: expected a list like a,b or ["a","b"], got {raw!r}')
    return items


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path}: invalid TOML: {error}") from None


def _setting_env_names() -> dict[str, str]:
    """`BOT_SECTION_KEY` -> `section.key` for every setting."""
    return {
        f"{ENV_PREFIX}{section}_{item.name}".upper(): f"{section}.{item.name}"
        for section, section_type in _sections().items()
        for item in dataclasses.fields(section_type)
    }


def _check_unknown_env(environ: Mapping[str, str]) -> None:
    """A `BOT_*` name that is no setting but looks like one (it starts with a section's
    prefix, e.g. `BOT_LOGGING_LEVL`, or is close to a known name by difflib's measure)
    is a typo: stop with one line naming the closest known name. Others are left alone."""
    settings = _setting_env_names()
    known = sorted(set(settings) | OTHER_ENV)
    prefixes = tuple(f"{ENV_PREFIX}{section}".upper() for section in _sections())
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or name in settings or name in OTHER_ENV:
            continue
        section_like = upper in prefixes or upper.startswith(tuple(f"{prefix}_" for prefix in prefixes))
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.8)
        if not section_like and not close:
            continue
        closest = (close or difflib.get_close_matches(upper, known, n=1, cutoff=0.0))[0]
        hint = f" ({settings[closest]})" if closest in settings else ""
        raise ConfigError(f"environment variable {name} is unknown; did you mean {closest}{hint}?")


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """`BOT_SECTION_KEY=value`, for every known key, and the platforms' own names where a
    key has one (`SLACK_API_BASE_URL`); `BOT_*` wins. A misspelt `BOT_*` name is an error."""
    _check_unknown_env(environ)
    overrides: dict[str, dict[str, Any]] = {}
    for section, section_type in _sections().items():
        for item in dataclasses.fields(section_type):
            for name in (item.metadata.get("env"), f"{ENV_PREFIX}{section}_{item.name}".upper()):
                if name and name in environ:
                    overrides.setdefault(section, {})[item.name] = environ[name]
    return overrides


def _flag_overrides(assignments: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`section.key=value` pairs from `--set`."""
    overrides: dict[str, dict[str, Any]] = {}
    for assignment in assignments:
        dotted, sep, value = assignment.partition("=")
        section, dot, key = dotted.strip().partition(".")
        if not sep or not dot or not key:
            raise ConfigError(f"--set {assignment!r}: expected SECTION.KEY=VALUE")
        overrides.setdefault(section, {})[key] = value
    return overrides


def _merge(layers: Sequence[Mapping[str, Any]], origin: Sequence[str]) -> Config:
    sections = _sections()
    built: dict[str, Any] = {}
    for section, section_type in sections.items():
        known = {f.name: f for f in dataclasses.fields(section_type)}
        values: dict[str, Any] = {}
        for layer, where in zip(layers, origin):
            table = layer.get(section, {})
            if not isinstance(table, Mapping):
                raise ConfigError(f"[{section}] in {where}: expected a table of keys")
            for key, raw in table.items():
                dotted = f"{section}.{key}"
                if key not in known:
                    raise ConfigError(f"{dotted} ({where}): unknown key; known keys: {', '.join(known)}")
                values[key] = _coerce(dotted, raw, known[key].type)
        instance = section_type(**values)
        for key, item in known.items():
            problem = item.metadata.get("check", lambda _: None)(getattr(instance, key))
            if problem:
                raise ConfigError(f"{section}.{key}: {problem} (got {getattr(instance, key)!r})")
        built[section] = instance
    for layer, where in zip(layers, origin):
        unknown = sorted(set(layer) - set(sections))
        if unknown:
            raise ConfigError(f"[{unknown[0]}] ({where}): unknown section; known sections: {', '.join(sections)}")
    return Config(**built)


def load_config(
    path: Optional[Path] = None,
    environ: Optional[Mapping[str, str]] = None,
    assignments: Sequence[str] = (),
) -> Config:
    """Builds the effective config; raises `ConfigError` with one line on any bad value."""
    environ = os.environ if environ is None else environ
    if path is None and environ.get(f"{ENV_PREFIX}CONFIG"):
        path = Path(environ[f"{ENV_PREFIX}CONFIG"])
    if path is None and DEFAULT_CONFIG_FILE.is_file():
        path = DEFAULT_CONFIG_FILE
    from_file = _read_file(path) if path is not None else {}
    return _merge(
        [from_file, _env_overrides(environ), _flag_overrides(assignments)],
        [str(path) if path else "defaults", "environment", "command line"],
    )
