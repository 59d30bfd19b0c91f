"""`bot run|chat|replay|train`: the operator's entry point.

Errors an operator can fix (bad config, missing key, no model) end with one line on
stderr and exit code 2; no traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Optional, Sequence

from bot.config import LOG_LEVELS, Config, ConfigError, load_config
from bot.engine import ModelMissingError
from bot.privacy.secrets import SecretsError

EXIT_USAGE = 2


class OperatorError(RuntimeError):
    """A problem the operator can fix; printed as one line, exit 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bot", description="Privacy-first AI assistant for fan communities.")
    parser.add_argument("--config", type=Path, help="TOML config file (default: $BOT_CONFIG, else ./config.toml if present)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one config key")
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="shortcut for --set logging.level=LEVEL")
    parser.add_argument("--model", type=Path, help="shortcut for --set rasa.model_path=PATH")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", help="serve every configured platform (the console chat when none is)")
    commands.add_parser("chat", help="chat with the assistant in this terminal")
    replay = commands.add_parser("replay", help="play a JSONL script, print one JSON line per bot message")
    replay.add_argument("script", help="input .jsonl file, or - for standard input")
    replay.add_argument("--out", type=Path, help="write the output here instead of standard output")
    train = commands.add_parser("train", help="train the Rasa model if it is missing or its data changed")
    train.add_argument("--force", action="store_true", help="train even when the model is up to date")
    return parser


def _config(args: argparse.Namespace) -> Config:
    assignments = list(args.set)
    if args.log_level:
        assignments.append(f"logging.level={args.log_level}")
    if args.model:
        assignments.append(f"rasa.model_path={args.model}")
    return load_config(args.config, assignments=assignments)


def _configure_logging(config: Config) -> None:
    logging.basicConfig(
        level=config.logging.level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


async def _serve_console(config: Config) -> None:
    from bot.app import build_bot, load_engine, local_secrets
    from connectors.console import ConsoleConnector

    secrets = local_secrets(config)
    bot = build_bot(config, secrets, load_engine(config))
    connector = ConsoleConnector()
    try:
        await connector.run(bot)
    finally:
        await connector.aclose()


async def _replay(config: Config, script: str, out_path: Optional[Path]) -> int:
    from bot.app import build_bot, load_engine, local_secrets
    from bot.replay import replay

    with ExitStack() as stack:
        try:
            source = sys.stdin if script == "-" else stack.enter_context(open(script, encoding="utf-8"))
        except OSError as error:
            raise OperatorError(f"cannot read {script}: {error.strerror}") from None
        out = sys.stdout if out_path is None else stack.enter_context(out_path.open("w", encoding="utf-8"))
        bot = build_bot(config, local_secrets(config), load_engine(config))
        malformed = await replay(bot, source, out, sys.stderr)
    if malformed:
        print(f"bot replay: {malformed} malformed line(s) skipped", file=sys.stderr)
    return 1 if malformed else 0


def _train(config: Config, force: bool) -> int:
    from bot.engine.training import TrainingError, train

    try:
        trained = train(config.rasa.project_dir, config.rasa.model_path, force=force)
    except TrainingError as error:
        raise OperatorError(str(error)) from None
    print(f"bot: model {'trained' if trained else 'up to date'}: {config.rasa.model_path}", file=sys.stderr)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = _config(args)
        _configure_logging(config)
        if args.command in ("run", "chat"):
            asyncio.run(_serve_console(config))
            return 0
        if args.command == "replay":
            return asyncio.run(_replay(config, args.script, args.out))
        return _train(config, args.force)
    except ConfigError as error:
        print(f"bot: config error: {error}", file=sys.stderr)
    except (SecretsError, OperatorError, ModelMissingError) as error:
        print(f"bot: {error}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
