"""Config precedence and one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from bot.config import ConfigError, load_config


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(body)
    return path


def test_defaults_without_file_or_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={})
    assert config.assistant.max_message_chars == 4000
    assert config.rasa.model_path == Path("rasa_project/models/fan.tar.gz")
    assert config.logging.level == "WARNING"


def test_precedence_flags_then_environment_then_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[assistant]\nmax_message_chars = 100\nfallbacks_before_offer = 3\ncommunity = 'File'\n")
    environ = {"BOT_ASSISTANT_MAX_MESSAGE_CHARS": "200", "BOT_ASSISTANT_COMMUNITY": "Env"}
    config = load_config(path, environ=environ, assignments=["assistant.max_message_chars=300"])
    assert config.assistant.max_message_chars == 300  # flag beats environment
    assert config.assistant.community == "Env"  # environment beats file
    assert config.assistant.fallbacks_before_offer == 3  # file beats default


def test_config_file_from_environment_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "[logging]\nlevel = 'INFO'\n")
    assert load_config(environ={"BOT_CONFIG": str(path)}).logging.level == "INFO"


@pytest.mark.parametrize(
    ("body", "environ", "expected"),
    [
        ("[assistant]\nmax_message_chars = 0\n", {}, "assistant.max_message_chars: must be greater than 0"),
        ("[assistant]\nmax_message_chars = 'many'\n", {}, "assistant.max_message_chars: expected an integer"),
        ("[assistant]\nmax_mesage_chars = 5\n", {}, "assistant.max_mesage_chars"),
        ("[assistent]\nname = 'x'\n", {}, "[assistent]"),
        ("[logging]\nlevel = 'LOUD'\n", {}, "logging.level: must be one of"),
        ("", {"BOT_ASSISTANT_CONVERSATION_IDLE_MINUTES": "soon"}, "assistant.conversation_idle_minutes: expected a number"),
        ("assistant = 3\n", {}, "[assistant]"),
        ("[assistant\n", {}, "invalid TOML"),
    ],
)
def test_invalid_values_give_one_line_naming_the_key(tmp_path: Path, body: str, environ: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, body), environ=environ)
    assert expected in str(raised.value)
    assert "\n" not in str(raised.value)


def test_cli_stops_with_exit_2_and_one_line(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "[assistant]\nmax_message_chars = -1\n")
    assert main(["--config", str(path), "train"]) == 2
    err = capfd.readouterr().err.strip()
    assert err.count("\n") == 0 and "assistant.max_message_chars" in err


def test_cli_set_needs_section_key_value(capfd: pytest.CaptureFixture[str]) -> None:
    """capfd, not capsys: `main` enables faulthandler, which needs a real stderr descriptor."""
    assert main(["--set", "nonsense", "train"]) == 2
    assert "SECTION.KEY=VALUE" in capfd.readouterr().err


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", environ={})


def test_example_config_is_valid_and_documents_every_key() -> None:
    import dataclasses

    from bot.config import Config

    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    config = load_config(example, environ={})
    text = example.read_text()
    for section in dataclasses.fields(Config):
        assert f"[{section.name}]" in text
        for key in dataclasses.fields(getattr(config, section.name)):
            assert f"{key.name} =" in text, f"{section.name}.{key.name} is not documented"


@pytest.mark.parametrize(
    ("name", "closest"),
    [
        ("BOT_LOGGING_LEVL", "BOT_LOGGING_LEVEL (logging.level)"),  # a section's prefix
        ("BOT_LOGING_LEVEL", "BOT_LOGGING_LEVEL (logging.level)"),  # close to a setting
        ("BOT_LOGGING", "BOT_LOGGING_LEVEL (logging.level)"),  # a bare section
        ("BOT_HANDOFF_MODERATOR", "BOT_HANDOFF_MODERATORS (handoff.moderators)"),
        ("BOT_STORE_KEY_URL", "BOT_STORE_KEYS_URL (store.keys_url)"),
        ("bot_logging_level", "BOT_LOGGING_LEVEL (logging.level)"),  # the wrong case is never read
        ("BOT_MASTER_KEY", "BOT_MASTER_KEYS"),  # close to a secret's name
        ("BOT_PSEUDONYM_KY", "BOT_PSEUDONYM_KEY"),
    ],
)
def test_a_misspelt_bot_variable_stops_start_up_naming_the_closest(name: str, closest: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(environ={name: "INFO"})
    message = str(raised.value)
    assert f"environment variable {name} is unknown; did you mean {closest}?" == message


@pytest.mark.parametrize(
    "name",
    [
        "BOT_CONFIG", "BOT_PSEUDONYM_KEY", "BOT_MASTER_KEYS", "BOT_TEST_POSTGRES_URL", "BOT_BENCH_POSTGRES_URL",
        "BOT_ENGINE_TOKEN", "BOT_LOGGING_LEVEL", "BOT_SLACK_API_BASE_URL",
        "BOT_USER_AGENT", "BOTANIST", "BOT", "ROBOT_LOGGING_LEVL", "MY_BOT_LOGGING_LEVL",  # not ours
    ],
)
def test_legitimate_and_unrelated_variables_are_accepted(name: str, tmp_path: Path) -> None:
    value = {"BOT_CONFIG": str(write(tmp_path, "")), "BOT_LOGGING_LEVEL": "INFO"}.get(name, "https://x.example/")
    load_config(environ={name: value})


def test_the_bot_variables_the_repository_mentions_are_all_accepted() -> None:
    """Every `BOT_*` name in our code, tests, scripts and docs is a setting, a known other
    variable, or does not look like a setting (a constant such as BOT_TOKEN)."""
    import re
    import subprocess

    from bot.config import _check_unknown_env

    repo = Path(__file__).resolve().parents[2]
    files = subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True, check=True).stdout.split()
    names: set[str] = set()
    for name in files:
        if name == "tests/unit/test_config.py":  # this file's deliberate typos
            continue
        if name.endswith((".py", ".sh", ".md", ".toml", ".yml", "Makefile")) or name.startswith(".ci/"):
            text = (repo / name).read_text(encoding="utf-8", errors="replace")
            names.update(re.findall(r"(?<![A-Za-z0-9_])BOT_[A-Z0-9_]*[A-Z0-9](?![A-Za-z0-9_])", text))
    names -= {"BOT_SECTION_KEY", "BOT_LOGGING_LEVL"}  # the documented pattern, the documented typo
    assert {"BOT_PSEUDONYM_KEY", "BOT_TEST_POSTGRES_URL", "BOT_LOGGING_LEVEL"} <= names
    for name in sorted(names):
        _check_unknown_env({name: "x"})


def test_cli_refuses_a_misspelt_variable_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOT_SECRETS_DEV_KEYS_FILE", str(tmp_path / "dev-keys.env"))
    monkeypatch.setenv("BOT_STORE_URL", f"sqlite:///{tmp_path}/transcripts.db")
    monkeypatch.setenv("BOT_LOGGING_LEVL", "DEBUG")
    assert main(["db", "init"]) == 2
    err = capfd.readouterr().err
    assert err == "bot: config error: environment variable BOT_LOGGING_LEVL is unknown; did you mean BOT_LOGGING_LEVEL (logging.level)?\n"
    assert not (tmp_path / "transcripts.db").exists()


DEVELOPER_FILE = "[assistant]\nmax_message_chars = 7\n[logging]\nlevel = 'DEBUG'\n"


def test_a_config_toml_in_the_working_directory_does_not_reach_the_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tests/conftest.py hides the developer's ./config.toml (and BOT_* settings) from every test."""
    write(tmp_path, DEVELOPER_FILE)
    monkeypatch.chdir(tmp_path)
    config = load_config()  # the process environment, as `bot` itself reads it
    assert config.assistant.max_message_chars == 4000 and config.logging.level == "WARNING"


def test_the_product_still_falls_back_to_config_toml_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.config

    write(tmp_path, DEVELOPER_FILE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bot.config, "DEFAULT_CONFIG_FILE", Path("config.toml"))  # what `bot` uses
    assert load_config(environ={}).assistant.max_message_chars == 7


@pytest.mark.parametrize("value", ['["mod1","mod2"]', "['mod1', 'mod2']", "mod1,mod2", " mod1 , mod2 "])
def test_set_takes_a_list_as_toml_json_or_comma_separated(value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(environ={}, assignments=[f"handoff.moderators={value}"]).handoff.moderators == ("mod1", "mod2")
    assert load_config(environ={"BOT_HANDOFF_MODERATORS": value}).handoff.moderators == ("mod1", "mod2")


@pytest.mark.parametrize("value", ['["mod1"', '"mod1"', "[1, 2]", 'mod1,"mod2"', "[mod1]"])
def test_set_refuses_a_half_list_with_one_line_exit_2(value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    """A list value that is neither `a,b` nor a well-formed list would become one wrong id."""
    monkeypatch.chdir(tmp_path)
    assert main(["--set", f"handoff.moderators={value}", "train"]) == 2
    err = capfd.readouterr().err.strip()
    assert err.count("\n") == 0 and "handoff.moderators" in err and "a,b" in err
