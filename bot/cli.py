"""`sesguard` (and `python -m bot`): the command line of SPEC §2."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from typing import Sequence

import orjson

from bot.progress import ScanProgress
from bot.errors import SettingsError
from bot.scan_settings import scan_settings
from detection.baseline import Tuning
from detection.record import IDENTITY_KEYS
from detection.scan import ScanSummary, scan
from detection.signals import Signal
from detection.sources.inputs import InputError, default_jobs, expand

# Bad records are named on stderr; past this many a run says how many more there were.
MAX_NAMED_PROBLEMS = 50


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sesguard", description="Amazon SES enumeration by new identities, triaged in Slack.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    scan_cmd = commands.add_parser("scan", help="detect over CloudTrail log files, folders or s3://bucket/prefix")
    scan_cmd.add_argument("paths", nargs="+", metavar="PATH_OR_URL")
    scan_cmd.add_argument("--json", action="store_true", help="one JSON object per signal per line")
    scan_cmd.add_argument("--db", metavar="URL", help="read and update this store (default: in memory)")
    scan_cmd.add_argument("--learning-days", type=float, default=None)
    scan_cmd.add_argument("--forget-days", type=float, default=None)
    scan_cmd.add_argument("--group-minutes", type=float, default=None)
    scan_cmd.add_argument("--identity-key", choices=IDENTITY_KEYS, default=None)
    scan_cmd.add_argument("--jobs", type=int, default=default_jobs(),
                          help="files scanned in parallel (default: the cores this process may use)")

    commands.add_parser("demo", help="the whole pipeline on bundled sample logs (no Slack, no AWS)")

    serve_cmd = commands.add_parser("serve", help="the Slack app over HTTP: POST /slack/events, GET /healthz")
    serve_cmd.add_argument("--port", type=int, default=None, help="listen on this port (default: PORT, else 3000)")
    commands.add_parser("socket", help="the Slack app over Socket Mode (SLACK_APP_TOKEN)")

    poll_cmd = commands.add_parser("poll", help="pull CloudTrail, detect, store, post pending alerts")
    poll_cmd.add_argument("--once", action="store_true",
                          help="one pass, then exit: 0 when it completed, 1 when a source or Slack failed")
    commands.add_parser("worker", help="the scheduler: poll, alert outbox, contact time-outs, housekeeping")
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
    sa = _sqlalchemy()
    url = getattr(args, "db", None) or _load_settings().database_url
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "(unparsable URL)"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def _non_negative(parser_name: str, value: float | None) -> float | None:
    if value is not None and not 0 <= value < float("inf"):  # also refuses nan
        raise SettingsError(f"sesguard scan: {parser_name} must be a number, not negative")
    return value


def _load_settings():
    from bot.settings import load_settings  # pydantic: only for the commands that need every setting

    return load_settings()


def run_scan(args: argparse.Namespace) -> int:
    tuning, identity_key = scan_settings()
    learning = _non_negative("--learning-days", args.learning_days)
    forget = _non_negative("--forget-days", args.forget_days)
    group = _non_negative("--group-minutes", args.group_minutes)
    tuning = Tuning(
        learning=timedelta(days=learning) if learning is not None else tuning.learning,
        forget=timedelta(days=forget) if forget is not None else tuning.forget,
        group=timedelta(minutes=group) if group is not None else tuning.group,
    )
    try:
        inputs = expand(args.paths)
    except InputError as exc:
        print(f"sesguard scan: {exc}", file=sys.stderr)
        return 2
    store = None
    if args.db:
        from detection.store import Store

        store = Store(args.db)
        store.migrate()
    # A progress bar only for a person watching: never in --json output, never into a pipe or a file.
    progress = None if args.json or not sys.stderr.isatty() else ScanProgress(sys.stderr, inputs.count_local)
    try:
        signals, summary = scan(inputs, tuning, args.identity_key or identity_key, store,
                                max(1, args.jobs), progress)
    finally:
        if progress is not None:
            progress.close()
    out = sys.stdout
    if args.json:
        for signal in signals:
            out.write(orjson.dumps(signal.to_dict()).decode() + "\n")
    else:
        out.write(signal_table(signals))
    report_problems(summary)
    print(summary.line(), file=sys.stderr)
    return 0


def report_problems(summary: ScanSummary) -> None:
    for problem in summary.corrupt_files:
        print(f"sesguard: skipped file {problem}", file=sys.stderr)
    for problem in summary.bad_records[:MAX_NAMED_PROBLEMS]:
        print(f"sesguard: skipped {problem}", file=sys.stderr)
    if summary.bad_count > MAX_NAMED_PROBLEMS:
        print(f"sesguard: … and {summary.bad_count - MAX_NAMED_PROBLEMS} more bad records", file=sys.stderr)


def signal_table(signals: list[Signal]) -> str:
    """A readable table for a terminal; one row a signal."""
    if not signals:
        return "no signals\n"
    header = ("FIRST SEEN", "SEVERITY", "ACCOUNT", "IDENTITY", "CALLS", "REGIONS", "SOURCE IPS", "STATUS")
    rows = [
        (
            s.to_dict()["first_seen"], s.severity, s.account_id, _clip_start(s.identity, 80),
            f"{s.event_count} ({', '.join(s.event_names)})", ",".join(s.regions) or "-",
            _clip(",".join(s.source_ips), 40) or "-", s.status,
        )
        for s in signals
    ]
    widths = [max(len(_printable(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(_printable(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines) + "\n"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clip_start(text: str, limit: int) -> str:
    """Keep the end of an ARN: the user, role or session name is what a reader looks for."""
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


def _printable(text: str) -> str:
    """No terminal escape sequences from attacker-written fields."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def run_demo(args: argparse.Namespace) -> int:
    from bot.demo import run

    return run()


def run_poll(args: argparse.Namespace) -> int:
    from bot.poll import command

    return command(once=args.once)


def run_worker(args: argparse.Namespace) -> int:
    from bot.scheduler import command

    return command()


def run_serve(args: argparse.Namespace) -> int:
    from bot.web import serve

    if args.port is not None and not 1 <= args.port <= 65535:
        raise SettingsError("sesguard serve: --port must be between 1 and 65535")
    return serve(args.port)


def run_socket(args: argparse.Namespace) -> int:
    from bot.app import run_socket_mode

    return run_socket_mode()


COMMANDS = {"scan": run_scan, "demo": run_demo, "poll": run_poll, "worker": run_worker, "serve": run_serve, "socket": run_socket}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
