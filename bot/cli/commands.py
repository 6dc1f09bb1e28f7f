"""`sesguard` (and `python -m bot`): the command line of SPEC §2. Each command imports what it needs when
it runs, so that `scan` on a laptop never loads Slack, pydantic or a database it does not use."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot import __version__
from bot.config.errors import SettingsError
from detection.record import IDENTITY_KEYS
from detection.sources.inputs import default_jobs
from detection.sources.sql.engine import is_engine_url

if TYPE_CHECKING:  # pydantic is loaded by `scan` when it reads its settings, not by `--version` or a usage error
    from bot.config.settings import DetectionSettings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sesguard",
                                     description="Amazon SES enumeration by new identities, triaged in Slack.")
    parser.add_argument("--version", action="version", version=f"sesguard {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    scan_cmd = commands.add_parser(
        "scan", help="detect over CloudTrail log files, folders or s3://bucket/prefix",
        description="Detection over CloudTrail logs; signals on stdout, a summary on stderr.")
    scan_cmd.add_argument("paths", nargs="+", metavar="PATH_OR_URL",
                          help="files, folders (walked for *.json, *.jsonl, *.ndjson, each optionally .gz), "
                               "s3://bucket/prefix, athena://database.table or lake://<event data store>")
    scan_cmd.add_argument("--since", metavar="DATE", default=None,
                          help="athena:// and lake:// only (needed there): from this UTC date or time "
                               "(2025-01-01, 2025-01-01T12:00:00Z)")
    scan_cmd.add_argument("--until", metavar="DATE", default=None,
                          help="athena:// and lake:// only: up to this UTC date or time, excluded (default: now)")
    scan_cmd.add_argument("--json", action="store_true", help="one JSON object per signal per line")
    scan_cmd.add_argument("--db", metavar="URL", help="read and update this store (default: in memory)")
    scan_cmd.add_argument("--learning-days", type=float, default=None, metavar="DAYS",
                          help="learn silently this long after an account's first call "
                               "(default: SESGUARD_LEARNING_DAYS, else 7)")
    scan_cmd.add_argument("--forget-days", type=float, default=None, metavar="DAYS",
                          help="an identity unseen for longer is new again (default: SESGUARD_FORGET_DAYS, else 28)")
    scan_cmd.add_argument("--group-minutes", type=float, default=None, metavar="MINUTES",
                          help="calls within this of a signal's first call join it "
                               "(default: SESGUARD_GROUP_MINUTES, else 60)")
    scan_cmd.add_argument("--identity-key", choices=IDENTITY_KEYS, default=None,
                          help="principal: a role's sessions are one identity; arn: every session ARN is "
                               "(default: SESGUARD_IDENTITY_KEY, else principal)")
    scan_cmd.add_argument("--jobs", type=int, default=default_jobs(), metavar="N",
                          help="files scanned in parallel (default: the cores this process may use)")

    demo_cmd = commands.add_parser(
        "demo", help="the whole pipeline on the bundled sample trail (no Slack, no AWS)",
        description="Scan the bundled trail into a fresh SQLite store and show the alerts it would post.")
    demo_cmd.add_argument("--blocks", action="store_true", help="also print each alert's Block Kit JSON")

    serve_cmd = commands.add_parser("serve", help="the Slack app over HTTP: POST /slack/events, GET /healthz")
    serve_cmd.add_argument("--port", type=int, default=None,
                           help="listen on this port (default: PORT, else 3000; 0: any free port, named in the "
                                "'listening on' line)")
    commands.add_parser("socket", help="the Slack app over Socket Mode (SLACK_APP_TOKEN)")

    poll_cmd = commands.add_parser("poll", help="pull CloudTrail, detect, store, post pending alerts")
    poll_cmd.add_argument("--once", action="store_true",
                          help="one pass, then exit: 0 when it completed, 1 when a source or Slack failed")
    commands.add_parser("worker",
                        help="the scheduler: poll, alert outbox, investigations, contact time-outs, housekeeping")

    investigate_cmd = commands.add_parser(
        "investigate", help="what else an identity, access key or IP address did",
        description="An ARN's or access key's CloudTrail activity of the last hours (LookupEvents by access key "
                    "and user name, paced with the worker), or every stored SES call from an IP address.")
    investigate_cmd.add_argument("term", metavar="ARN|ACCESS_KEY_ID|IP",
                                 help="an IAM or STS ARN (user, role, session, root), an access key ID, "
                                      "or an IP address")
    investigate_cmd.add_argument("--hours", type=float, default=None, metavar="N",
                                 help="how far back (default: SESGUARD_INVESTIGATE_HOURS, else 24; for an IP, every "
                                      "stored call; at most 2160, LookupEvents' 90 days)")
    investigate_cmd.add_argument("--json", action="store_true", help="the answer as one JSON object")

    ranges_cmd = commands.add_parser(
        "ip-ranges", help="download AWS's published IP ranges into the store (the alerts' address line)",
        description="Download ip-ranges.json, check it, and keep it in the store, where every sesguard process "
                    "reads it from its next lookup on (until then: the excerpt shipped with sesguard).")
    ranges_cmd.add_argument("--url", default=None, metavar="URL",
                            help="where to download it (default: AWS's published ip-ranges.json)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SettingsError as exc:
        print(exc.message, file=sys.stderr)
        return 2
    except (_sqlalchemy().exc.ArgumentError, _sqlalchemy().exc.NoSuchModuleError) as exc:
        print(f"sesguard: not a database URL: {_first_line(exc)}", file=sys.stderr)
        return 2
    except _sqlalchemy().exc.OperationalError as exc:
        # The database is unreachable or refuses us: one line, with the URL's password hidden.
        print(f"sesguard: cannot use the database {_database_url(args)}: {_first_line(exc.orig or exc)}",
              file=sys.stderr)
        return 1


def _sqlalchemy():
    """SQLAlchemy, imported when a database is touched (or an error names one): `scan` without --db never
    needs it, and importing it and the store costs half a second of every start."""
    import sqlalchemy

    return sqlalchemy


def _database_url(args: argparse.Namespace) -> str:
    """The URL in use, its password hidden."""
    from bot.config.settings import load_settings

    sa = _sqlalchemy()
    url = getattr(args, "db", None) or load_settings().database_url
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "(unparsable URL)"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def run_scan(args: argparse.Namespace) -> int:
    import orjson

    from bot.cli.progress import ScanProgress
    from bot.cli.terminal import report_problems, signal_table, terminal_width
    from bot.config.scan_settings import load_scan_settings
    from bot.printable import printable
    from detection.scan import scan
    from detection.sources.inputs import InputError, expand

    settings = load_scan_settings(learning_days=args.learning_days, forget_days=args.forget_days,
                                  group_minutes=args.group_minutes)
    tuning = settings.tuning
    identity_mode = args.identity_key or settings.identity_key
    engine_urls = [path for path in args.paths if is_engine_url(path)]
    engines = _engine_inputs(engine_urls, args, settings) if engine_urls else []
    if not engine_urls and (args.since is not None or args.until is not None):
        print("sesguard scan: warning: --since and --until bound athena:// and lake:// queries only; files are read "
              "whole", file=sys.stderr)
    try:
        inputs = expand([path for path in args.paths if not is_engine_url(path)])
    except InputError as exc:
        print(f"sesguard scan: {printable(exc)}", file=sys.stderr)
        return 2
    store = None
    if args.db:
        from bot.store.schema import migrate
        from detection.store import Store

        store = Store(args.db)
        migrate(store)
    read_already = _run_engines(engines, identity_mode)
    # A progress bar only for a person watching: never in --json output, never into a pipe or a file.
    progress = None if args.json or not sys.stderr.isatty() else ScanProgress(sys.stderr, inputs.count_local)
    try:
        signals, summary = scan(inputs, tuning, identity_mode, store, max(1, args.jobs), progress, read_already)
    finally:
        if progress is not None:
            progress.close()
    for folder in inputs.empty_folders():
        print(f"sesguard scan: warning: no *.json, *.jsonl or *.ndjson files (optionally .gz) in {printable(folder)}",
              file=sys.stderr)
    out = sys.stdout
    if args.json:
        for signal in signals:
            out.write(orjson.dumps(signal.to_dict()).decode() + "\n")
    else:
        out.write(signal_table(signals, terminal_width(out)))
    report_problems(summary)
    print(summary.line(), file=sys.stderr)
    # A query that failed read nothing of its input: a script must not take that for "nothing found".
    return 1 if any(scanned.failed for scanned in read_already) else 0


def _engine_time(flag: str, text: str) -> datetime:
    """A --since/--until value as a UTC datetime; a date alone is its midnight."""
    from detection.record import EARLIEST_EVENT_TIME, LATEST_EVENT_TIME

    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SettingsError(f"sesguard scan: {flag} must be a date or time "
                            "(2025-01-01, 2025-01-01T12:00:00Z)") from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if not EARLIEST_EVENT_TIME <= moment <= LATEST_EVENT_TIME:
        raise SettingsError(f"sesguard scan: {flag} must be between "
                            f"{EARLIEST_EVENT_TIME:%Y} and {LATEST_EVENT_TIME:%Y}")
    return moment


def _engine_inputs(urls: list[str], args: argparse.Namespace, settings: DetectionSettings) -> list:
    """The athena:// and lake:// inputs with their time range; SettingsError (exit 2) for a usage error."""
    from detection.sources.sql.engine import parse
    from detection.sources.sql.values import UnsafeValue
    from detection.store import utcnow

    if args.since is None:
        raise SettingsError("sesguard scan: athena:// and lake:// need --since (every query is bounded in time)")
    since = _engine_time("--since", args.since)
    until = _engine_time("--until", args.until) if args.until is not None else utcnow()
    if since >= until:
        raise SettingsError("sesguard scan: --since must be before --until")
    engine = settings.engine_settings
    try:
        return [(parse(url, settings.athena_table, settings.lake_event_data_store), since, until, engine)
                for url in urls]
    except UnsafeValue as exc:
        raise SettingsError(f"sesguard scan: {exc}") from None


def _run_engines(engines: list, identity_mode: str) -> list:
    """Each engine's query, its figures (or its one-line failure) on stderr."""
    from bot.printable import printable
    from detection.sources.sql.engine import rule_scan

    scans = []
    for source, since, until, settings in engines:
        scanned = rule_scan(source, since, until, settings, identity_mode)
        # One line either way: the figures, or the failure (said here, not again as a skipped file).
        assert scanned.figures is not None  # rule_scan() returns the figures of its query, failed or not
        print(f"sesguard scan: {printable(scanned.error or scanned.figures.line(source.url))}", file=sys.stderr)
        scanned.failed, scanned.error = scanned.error, None
        scans.append(scanned)
    return scans


def run_demo(args: argparse.Namespace) -> int:
    from bot.cli.demo import run

    return run(show_blocks=args.blocks)


def run_poll(args: argparse.Namespace) -> int:
    from bot.worker.ingest.command import command

    return command(once=args.once)


def run_worker(args: argparse.Namespace) -> int:
    from bot.worker.scheduler import command

    return command()


def run_investigate(args: argparse.Namespace) -> int:
    import orjson
    from pydantic import ValidationError

    from bot.cli.investigation import address_report, summary_report
    from bot.config.settings import load_settings
    from bot.investigate.reader import SharedReader, engine_reader
    from bot.printable import printable
    from bot.store.schema import migrate
    from detection import subjects
    from detection.history import identity_history
    from detection.investigate import ADDRESS_NOTE, MAX_HOURS, recent_window
    from detection.store import Store, utcnow

    term = args.term.strip()
    kind = subjects.kind_of(term)
    if kind is None:
        print(f"sesguard investigate: {printable(term)[:200]} is not an ARN, an access key ID or an IP address",
              file=sys.stderr)
        return 2
    settings = load_settings()
    if args.hours is not None:
        try:  # SESGUARD_INVESTIGATE_HOURS' own rule: above 0, at most LookupEvents' 90 days
            settings.override("investigate_hours", args.hours)
        except ValidationError:
            raise SettingsError(f"sesguard investigate: --hours must be a number above 0 and at most "
                                f"{MAX_HOURS:g}") from None
    store = Store(settings.database_url)
    migrate(store)
    if kind == subjects.IP:
        days = args.hours / 24 if args.hours else settings.event_retention_days
        history = identity_history(store, term, days=days)
        # With a SQL engine (SPEC §9), the address's whole traffic of the last hours too.
        traffic = None
        engine = engine_reader(settings)
        if engine is not None:
            window = recent_window(args.hours or settings.investigate_hours, utcnow())
            traffic = engine.address(term, window)
        if args.json:
            answer = {"address": term, "days": days, "history": history,
                      **({"traffic": traffic.to_dict()} if traffic else {"note": ADDRESS_NOTE})}
            print(orjson.dumps(answer).decode())
        else:
            sys.stdout.write(address_report(term, history, days))
            if traffic is not None:
                sys.stdout.write(summary_report(traffic))
        return 1 if traffic is not None and traffic.reading.problems and not traffic.reading.pages else 0
    window = recent_window(args.hours or settings.investigate_hours, utcnow())
    subject = subjects.for_term(store, term, window, settings.identity_key)
    summary = SharedReader(settings, store)().investigate(subject, window, [*settings.aws_regions, *subject.regions])
    sys.stdout.write(orjson.dumps(summary.to_dict()).decode() + "\n" if args.json else summary_report(summary))
    # Exit 1 when nothing could be read at all (credentials, permissions): a script must not take it for "nothing".
    return 1 if summary.reading.problems and not summary.reading.pages else 0


def run_ip_ranges(args: argparse.Namespace) -> int:
    """`sesguard ip-ranges`: 0 when the list was stored, 1 when it could not be had or is no ip-ranges.json."""
    from bot.config.settings import load_settings
    from bot.context import ip_ranges
    from bot.printable import printable
    from bot.store.schema import migrate
    from detection.store import Store

    store = Store(load_settings().database_url)
    migrate(store)
    url = args.url or ip_ranges.AWS_URL
    try:
        refreshed = ip_ranges.refresh(store, url)
    except (OSError, ValueError) as exc:  # URLError, HTTPError and timeouts are OSErrors; BadRanges a ValueError
        print(f"sesguard ip-ranges: {printable(url)[:300]}: {printable(exc)[:300]}; the list in use is unchanged",
              file=sys.stderr)
        return 1
    before, after = refreshed.before, refreshed.after
    was = "the shipped excerpt" if before.shipped else f"syncToken {before.sync_token}"
    print(f"sesguard ip-ranges: stored syncToken {after.sync_token} of {after.create_date} ({after.count} ranges); "
          f"was {was} of {before.create_date} ({before.count} ranges)", file=sys.stderr)
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from bot.slack.web import serve

    if args.port is not None and not 0 <= args.port <= 65535:  # 0: any free port, named in "listening on"
        raise SettingsError("sesguard serve: --port must be between 0 and 65535")
    return serve(args.port)


def run_socket(args: argparse.Namespace) -> int:
    from bot.slack.app import run_socket_mode

    return run_socket_mode()


COMMANDS = {"scan": run_scan, "demo": run_demo, "poll": run_poll, "worker": run_worker, "serve": run_serve,
            "socket": run_socket, "investigate": run_investigate, "ip-ranges": run_ip_ranges}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
