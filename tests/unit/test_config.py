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


def test_cli_stops_with_exit_2_and_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "[assistant]\nmax_message_chars = -1\n")
    assert main(["--config", str(path), "train"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "assistant.max_message_chars" in err


def test_cli_set_needs_section_key_value(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--set", "nonsense", "train"]) == 2
    assert "SECTION.KEY=VALUE" in capsys.readouterr().err


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
