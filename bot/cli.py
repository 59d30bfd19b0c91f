"""`bot run|chat|replay|train|db|keys|purge|audit|report|export|forget`: the operator's entry point.

Errors an operator can fix (bad config, missing or wrong key, no model, unreachable
database) end with one line on stderr and exit code 2; no traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import json
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Optional

from bot.config import LOG_LEVELS, Config, ConfigError, load_config
from bot.engine import ModelMissingError
from bot.engine.lifecycle import EngineConfigError, open_engine, require_model
from bot.engine.rasa_env import RasaEnvironmentError
from bot.privacy.crypto import MasterKeyError
from bot.privacy.secrets import SecretsError
from bot.privacy.store import TranscriptStore
from connectors.base import ConnectorError

EXIT_USAGE = 2
#: Replay's clock (`bot.replay.ReplayClock`): fixed start, one second per input line, so runs are reproducible.
REPLAY_EPOCH = datetime(2026, 1, 1)
#: `bot report --since`: at most a hundred years back.
MAX_SINCE_DAYS = 36_500


class OperatorError(RuntimeError):
    """A problem the operator can fix; printed as one line, exit 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bot", description="Privacy-first AI assistant for fan communities.")
    parser.add_argument("--config", type=Path, help="TOML config file (default: $BOT_CONFIG, else ./config.toml if present)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one config key")
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="shortcut for --set logging.level=LEVEL")
    parser.add_argument("--model", type=Path, help="shortcut for --set rasa.model_path=PATH")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="serve every configured platform (the console chat when none is)")
    run.add_argument("--no-slack", action="store_true", help="do not serve Slack on this worker (shortcut for --set slack.enabled=false)")
    run.add_argument("--no-discord", action="store_true", help="do not serve Discord on this worker (shortcut for --set discord.enabled=false)")
    commands.add_parser("chat", help="chat with the assistant in this terminal")
    replay = commands.add_parser("replay", help="play a JSONL script, print one JSON line per bot message")
    replay.add_argument("script", help="input .jsonl file, or - for standard input")
    replay.add_argument("--out", type=Path, help="write the output here instead of standard output")
    replay.add_argument(
        "--store-url", help="keep the replay's transcripts in this database (default: a throwaway SQLite file)"
    )
    train = commands.add_parser("train", help="train the Rasa model if it is missing or its data changed")
    train.add_argument("--force", action="store_true", help="train even when the model is up to date")
    database = commands.add_parser("db", help="database maintenance")
    database.add_argument(
        "action", choices=["init", "upgrade"], help="init: create a new, empty store; upgrade: apply schema migrations"
    )
    keys = commands.add_parser("keys", help="encryption key maintenance")
    keys.add_argument("action", choices=["rotate"], help="rewrap every data key under the first master key")
    purge = commands.add_parser("purge", help="delete turns older than [privacy] retention_days")
    purge.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    audit = commands.add_parser("audit", help="audit log")
    audit.add_argument("action", choices=["verify", "show", "nlu"], help="check the hash chain, print the records, or audit the model per register")
    audit.add_argument("--json", action="store_true", help="nlu: print the figures as JSON")
    audit.add_argument("--head", help="the head hash recorded earlier; detects records cut off the end")
    report = commands.add_parser("report", help="accountability report from stored metadata (no message is decrypted)")
    report.add_argument("--since", type=float, default=30.0, metavar="DAYS", help="look back this many days (default 30)")
    report.add_argument("--html", type=Path, metavar="FILE", help="also write a self-contained HTML page with charts")
    report.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON (docs/report.schema.json)")
    report.add_argument("--nlu", type=Path, metavar="FILE", help="include a saved `bot audit nlu --json` result")
    handoff = commands.add_parser("handoff", help="human handoff tickets")
    handoff.add_argument(
        "action", choices=["list", "release"],
        help="list: show the queue (no fan identities); release N: put claimed ticket N back in the queue",
    )
    handoff.add_argument("ticket", nargs="?", type=int, help="the ticket number (release)")
    handoff.add_argument("--all", action="store_true", help="include resolved and cancelled tickets")
    for name, text in (("export", "print everything stored about one fan"), ("forget", "erase one fan's stored data")):
        fan = commands.add_parser(name, help=text)
        fan.add_argument("--user", required=True, metavar="PLATFORM:ID", help="e.g. slack:U0123ABC or discord:1234")
    return parser


def _config(args: argparse.Namespace) -> Config:
    assignments = list(args.set)
    if args.log_level:
        assignments.append(f"logging.level={args.log_level}")
    if args.model:
        assignments.append(f"rasa.model_path={args.model}")
    for platform in ("slack", "discord"):
        if getattr(args, f"no_{platform}", False):
            assignments.append(f"{platform}.enabled=false")
    return load_config(args.config, assignments=assignments)


def _configure_logging(config: Config) -> None:
    from bot import log_privacy

    logging.basicConfig(
        level=config.logging.level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:  # the SDKs log routes with platform ids in them
        log_privacy.install(handler)


def _interactive() -> bool:
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return sys.stdin.isatty()
    return False


async def _serve_console(config: Config) -> None:
    from bot.app import build_bot, local_secrets, open_store
    from bot.leader import JOBS, leader_lock, while_leading
    from bot.privacy.retention import purge_forever
    from connectors.console import ConsoleConnector

    require_model(config)
    secrets = local_secrets(config)
    store = open_store(config, secrets, serving=True)
    try:
        # Typed at a terminal, commands are answered while the model loads; a script piped in
        # waits for the model, so its lines get the model's answers (as `bot replay` does).
        async with open_engine(config, wait_ready=not _interactive()) as engine:
            bot = build_bot(config, secrets, engine, store)
            jobs = leader_lock(config.store.url, JOBS)  # a `bot run` beside it on PostgreSQL may lead
            retention = asyncio.create_task(
                while_leading(jobs, lambda: purge_forever(store, config.privacy.retention_days, config.privacy.purge_interval_minutes * 60))
            )
            connector = ConsoleConnector()
            try:
                await connector.run(bot)
            finally:
                retention.cancel()
                await asyncio.gather(retention, return_exceptions=True)
                await jobs.aclose()
                await bot.drain()  # the report's buffered events (bot.privacy.events)
                await connector.aclose()
    finally:
        await store.aclose()


async def _serve(config: Config) -> None:
    """Every platform whose token is set; the console chat when none is."""
    from bot.app import build_bot, open_store
    from bot.leader import while_leading
    from bot.privacy.health import watch_health
    from bot.privacy.notice import require_contacts
    from bot.privacy.retention import purge_forever
    from bot.privacy.secrets import load_secrets
    from connectors.health import HealthServer, Readiness
    from connectors.launch import check_platform_choice, configured_platforms, serve, worker_locks

    check_platform_choice(config)
    locks = worker_locks(config)  # nothing connects before the store is open
    platforms = configured_platforms(config, locks=locks)
    if not platforms.connectors:
        await locks.aclose()
        await _serve_console(config)
        return
    try:  # fans on a platform are told who answers for their data (bot.privacy.notice)
        require_contacts(config.privacy)
    except ConfigError:
        await locks.aclose()
        raise
    require_model(config)
    secrets = load_secrets(os.environ)  # platforms mean real fans: never the generated dev keys
    store = open_store(config, secrets, create=False, serving=True)  # a vanished store is an error, not a fresh start
    try:
        async with open_engine(config) as engine:  # connectors serve commands while the model loads
            bot = build_bot(config, secrets, engine, store)
            retention = asyncio.create_task(  # in one process across workers (bot.leader)
                while_leading(locks.jobs, lambda: purge_forever(store, config.privacy.retention_days, config.privacy.purge_interval_minutes * 60))
            )
            readiness = Readiness(engine, connectors=platforms.connectors)
            health = asyncio.create_task(watch_health(store, report=lambda problem: setattr(readiness, "store_problem", problem)))
            queue = bot.handoff.tickets.queue_length
            endpoint = HealthServer(readiness, config.health.host, config.health.port, queue) if config.health.port else None
            if endpoint is not None:
                await endpoint.start()
            try:
                await serve(bot, platforms, jobs=locks.jobs)
            finally:
                retention.cancel()
                health.cancel()
                await asyncio.gather(retention, health, return_exceptions=True)
                if endpoint is not None:
                    await endpoint.aclose()
    finally:
        await locks.aclose()
        await store.aclose()


@contextlib.contextmanager
def _replay_store_url(url: Optional[str]) -> Iterator[str]:
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="bot-replay-") as folder:
        yield f"sqlite:///{folder}/replay.db"


async def _replay(config: Config, script: str, out_path: Optional[Path], store_url: Optional[str]) -> int:
    from bot.app import build_bot, local_secrets, open_store
    from bot.replay import ReplayClock, replay

    with contextlib.ExitStack() as stack:
        try:
            # Binary: each line is decoded on its own, so invalid UTF-8 is one skipped line.
            source = sys.stdin.buffer if script == "-" else stack.enter_context(open(script, "rb"))  # noqa: ASYNC230 - opened once, before the replay starts
        except OSError as error:
            raise OperatorError(f"cannot read {script}: {error.strerror}") from None
        out = sys.stdout if out_path is None else stack.enter_context(out_path.open("w", encoding="utf-8"))
        require_model(config)
        secrets = local_secrets(config)
        store = open_store(config, secrets, stack.enter_context(_replay_store_url(store_url)))
        clock = ReplayClock(REPLAY_EPOCH)
        store.clock = clock.epoch  # the store's own events (privacy operations) too: one clock for the whole run
        try:
            async with open_engine(config, wait_ready=True) as engine:
                bot = build_bot(config, secrets, engine, store, clock=clock)
                malformed = await replay(bot, source, out, sys.stderr, clock=clock)
        finally:
            await store.aclose()
    if malformed:
        print(f"bot replay: {malformed} malformed line(s) skipped", file=sys.stderr)
    return 1 if malformed else 0


async def _audit_nlu(config: Config, as_json: bool) -> int:
    """Macro-F1 per register of the labelled fan-phrasing set; needs the model, not the store."""
    from bot.nlu_audit import audit, render

    require_model(config)
    async with open_engine(config, wait_ready=True) as engine:
        report = await audit(engine)
    print(json.dumps(report, indent=2) if as_json else render(report))
    return 0


async def _report(config: Config, store: TranscriptStore, args: argparse.Namespace) -> None:
    """`bot report`: the summary on stdout; `--json` and `--html` files on request."""
    from bot.report import build, is_nlu_audit, render_text

    if not 0 < args.since <= MAX_SINCE_DAYS:  # inf, nan and 1e400 too: a datetime cannot go back that far
        raise OperatorError(f"--since {args.since:g}: give a number of days above 0 and at most {MAX_SINCE_DAYS:,}")
    nlu = None
    if args.nlu is not None:
        try:
            nlu = json.loads(args.nlu.read_text(encoding="utf-8"))  # noqa: ASYNC240 - an operator command, no fan waits
        except (OSError, ValueError) as error:
            raise OperatorError(f"--nlu {args.nlu}: not a `bot audit nlu --json` result ({type(error).__name__})") from None
        if not is_nlu_audit(nlu):  # well-formed JSON of the wrong shape or types
            raise OperatorError(f"--nlu {args.nlu}: not a `bot audit nlu --json` result (worst, worst_best_ratio and macro_f1 must be numbers)")

    def work() -> dict[str, object]:
        with store.engine.connect() as connection:
            return build(
                connection, store.audit_log, since_days=args.since, now=datetime.utcnow(),
                retention_days=config.privacy.retention_days, purge_interval_minutes=config.privacy.purge_interval_minutes,
                nlu_audit=nlu,
            )

    report = await store.run(work)
    for path, render in ((args.json, _json_text), (args.html, _html_text)):
        if path is not None:
            try:
                path.write_text(render(report), encoding="utf-8")  # noqa: ASYNC240 - an operator command
            except OSError as error:
                raise OperatorError(f"cannot write {path}: {error.strerror}") from None
    print(render_text(report))


def _json_text(report: dict[str, object]) -> str:
    return json.dumps(report, indent=2, sort_keys=True) + "\n"


def _html_text(report: dict[str, object]) -> str:
    from bot.report_html import render_html

    return render_html(report)


def _train(config: Config, force: bool) -> int:
    from bot.engine.rasa_env import RasaEnvironment, TrainingError

    try:
        trained = RasaEnvironment(config.rasa.environment, config.rasa.project_dir).train(config.rasa.model_path, force=force)
    except TrainingError as error:
        raise OperatorError(str(error)) from None
    print(f"bot: model {'trained' if trained else 'up to date'}: {config.rasa.model_path}", file=sys.stderr)
    return 0


async def _maintain(config: Config, args: argparse.Namespace) -> int:
    """The store commands: each opens (and migrates) the store, acts, and closes it."""
    from bot.app import local_secrets, open_store
    from bot.privacy.pseudonym import Pseudonymizer
    from bot.privacy.retention import cutoff, would_purge

    secrets = local_secrets(config)
    if args.command == "db" and args.action == "init":
        from bot.privacy.store import store_exists

        if store_exists(config.store.url, config.store.keys_url or None):
            raise OperatorError("a store already exists there; nothing was changed (use `bot db upgrade` to migrate it)")
    store = open_store(
        config, secrets, create=args.command == "db" and args.action == "init", adopt_pseudonym_key=args.command == "db"
    )
    try:
        if args.command == "db":
            print(f"bot: {'created a new store' if args.action == 'init' else 'database schema is up to date'}", file=sys.stderr)
        elif args.command == "keys":
            print(f"bot: rewrapped {await store.rotate_keys()} data key(s) under the first master key", file=sys.stderr)
        elif args.command == "purge":
            before = cutoff(config.privacy.retention_days, datetime.utcnow())
            # Both list everything the purge deletes, not only the turns, in the same words.
            counts = await would_purge(store, before) if args.dry_run else await store.purge_itemised(before)
            listed = ", ".join(f"{n} {name.rstrip('s')}(s)" for name, n in counts.items())
            verb = "would delete" if args.dry_run else "deleted"
            print(f"bot: {verb} {listed} older than {before.isoformat(timespec='seconds')}Z")
        elif args.command == "report":
            await _report(config, store, args)
        elif args.command == "handoff" and args.action == "release":
            from bot.handoff.states import Action, IllegalTransition, Status
            from bot.handoff.ticket_store import TicketStore

            if args.ticket is None:
                raise OperatorError("bot handoff release: give the ticket number, e.g. bot handoff release 3")
            tickets = TicketStore(store)
            ticket = await tickets.get(args.ticket)
            if ticket is None or ticket.status is not Status.CLAIMED:
                state = ticket.status.value if ticket else "not stored (erased, purged or never opened)"
                raise OperatorError(f"ticket #{args.ticket} is {state}: only a claimed ticket can be released")
            try:
                await tickets.move(ticket, Action.RELEASE, datetime.utcnow(), "operator")
            except IllegalTransition as error:
                raise OperatorError(f"ticket #{args.ticket}: {error}") from None
            print(
                f"bot: ticket #{args.ticket} is back in the queue; the running bot tells the fan and the desk "
                "at its next timeout check (within 30 seconds)"
            )
        elif args.command == "handoff":
            from bot.handoff.ticket_store import TicketStore

            listing = await TicketStore(store).listing(active_only=not args.all)
            print(f"{'ticket':>6}  {'status':<9}  {'platform':<8}  {'opened (UTC)':<19}  {'moderator':<16}  why")
            for ticket in listing:
                opened = ticket.created_at.isoformat(sep=" ", timespec="seconds")
                print(
                    f"{ticket.id:>6}  {ticket.status.value:<9}  {ticket.platform:<8}  {opened:<19}  "
                    f"{(ticket.moderator_name or '-'):<16}  {ticket.reason}"
                )
            print(f"bot: {len(listing)} ticket(s)", file=sys.stderr)
        elif args.command == "audit":
            if args.action == "show":
                for entry in store.audit_log.entries():
                    print(json.dumps(entry, default=str))
                return 0
            if args.head is not None and not re.fullmatch(r"[0-9a-f]{64}", args.head):
                raise OperatorError(f"--head {args.head!r}: expected the 64-hex-digit hash `bot audit verify` printed")
            report = store.audit_log.verify(args.head)
            if not report.ok:
                print(f"bot: audit log FAILED verification after {report.records} record(s): {report.problem}")
                return 1
            since = f"; {report.after_head} record(s) written since the given head" if args.head else ""
            print(f"bot: audit log intact: {report.records} record(s), head {report.head}{since}")
        else:
            platform, sep, user_id = args.user.partition(":")
            if not sep or not platform or not user_id:
                raise OperatorError(f"--user {args.user!r}: expected PLATFORM:ID, e.g. slack:U0123ABC")
            fan = Pseudonymizer(secrets.pseudonym_key).fan(platform, user_id)
            if not await store.holds_data(fan):
                # A mistyped id and a store opened under another key look alike from here; the
                # key fingerprint check at open has ruled out the second.
                print(f"bot: no data held for {args.user} under this pseudonym key; nothing was {'exported' if args.command == 'export' else 'erased'}", file=sys.stderr)
                return 1
            if args.command == "export":
                from bot.privacy.notice import PrivacyNotice

                notice = PrivacyNotice(config.privacy, config.assistant.conversation_idle_minutes)
                export = notice.access(await store.export(fan, actor="operator"), live=False)  # what /my-data says, Art. 13/15
                print(json.dumps(export, indent=2, sort_keys=True, ensure_ascii=False))
            else:
                receipt = await store.erase(fan, actor="operator")
                await store.settle()
                print(
                    f"bot: erased {receipt.records} stored record(s) ({receipt.turns} turn(s), {receipt.tickets} ticket(s)); "
                    + (
                        "every running bot process on this database drops what it held of this fan at once"
                        if store.engine.dialect.name == "postgresql"  # bot.privacy.notify
                        else "the running bot drops what it holds of this fan at their next message, or after "
                        f"{config.assistant.conversation_idle_minutes:g} idle minutes"
                    )
                )
                if receipt.desk_posts:  # no desk connection here: the running bot deletes them
                    print(
                        f"bot: {len(receipt.desk_posts)} message(s) the bot posted about this fan's tickets are queued for "
                        "deletion at the moderator desk: the running `bot run` deletes them within a minute or two "
                        "(or at its next start); until then they are still visible there"
                    )
        return 0
    finally:
        await store.aclose()


def main(argv: Optional[Sequence[str]] = None) -> int:
    from bot.privacy.store import KeyMismatchError, StoreError

    with contextlib.suppress(ValueError, OSError, AttributeError):  # stderr without a file descriptor
        faulthandler.enable()  # a fatal signal (SIGBUS on a store file made unwritable) still leaves a line

    args = _parser().parse_args(argv)
    try:
        config = _config(args)
        _configure_logging(config)
        if args.command == "run":
            asyncio.run(_serve(config))
            return 0
        if args.command == "chat":
            asyncio.run(_serve_console(config))
            return 0
        if args.command == "replay":
            return asyncio.run(_replay(config, args.script, args.out, args.store_url))
        if args.command == "train":
            return _train(config, args.force)
        if args.command == "audit" and args.action == "nlu":
            return asyncio.run(_audit_nlu(config, args.json))
        return asyncio.run(_maintain(config, args))
    except ConfigError as error:
        print(f"bot: config error: {error}", file=sys.stderr)
    except (
        SecretsError, MasterKeyError, KeyMismatchError, StoreError, OperatorError, ModelMissingError, ConnectorError,
        EngineConfigError, RasaEnvironmentError,
    ) as error:  # fmt: skip
        print(f"bot: {error}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
