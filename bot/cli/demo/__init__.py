"""`sesguard demo`: the whole pipeline on the bundled trail, on a fresh SQLite store; no Slack, no AWS.

It reads `trail/` beside this file (two accounts, seven weeks, all four input formats; the stories are
told in `build_trail.py`), stores what it finds, applies a suppression the team made earlier, and shows
the signals and each alert as Slack would show it, with a link that opens the message in Slack's Block
Kit Builder. The trail ships inside the package, so an installed sesguard runs it from any folder.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from bot.cli.demo.preview import builder_url, readable
from bot.cli.terminal import report_problems, signal_table, terminal_width
from bot.config.settings import Settings, load_settings
from bot.store.schema import migrate
from detection.scan import scan
from detection.signals import Status
from detection.sources.inputs import expand
from detection.store import Store, SuppressionRow

TRAIL = Path(__file__).resolve().parent / "trail"
PENTEST_ROLE = "arn:aws:iam::444455556666:role/pentest-readonly"


def run(show_blocks: bool = False) -> int:
    settings = load_settings()
    if not TRAIL.is_dir():
        print(f"sesguard demo: the bundled trail is missing ({TRAIL}); run python -m bot.cli.demo.build_trail",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="sesguard-demo-") as folder:
        store = Store(f"sqlite:///{Path(folder) / 'sesguard.db'}")
        migrate(store)
        with store.session() as session:
            session.add(SuppressionRow(identity=PENTEST_ROLE, account_id="444455556666", author="U0SECLEAD",
                                       reason="scheduled penetration test (ticket SEC-142)"))
            session.commit()
        print(f"Scanning the demo trail in {TRAIL} into a fresh SQLite store…\n")
        signals, summary = scan(expand([str(TRAIL)]), settings.tuning, settings.identity_key, store)
        report_problems(summary)
        print(summary.line() + "\n")
        print(signal_table(signals, terminal_width(sys.stdout)))
        for signal in signals:
            print(f"\n{signal.severity.upper()}  {signal.identity}  ({signal.status})")
            for reason in signal.reasons:
                print(f"  - {reason}")
        print_alerts(store, settings, signals, show_blocks)
        store.engine.dispose()
    return 0


def print_alerts(store: Store, settings: Settings, signals: list, show_blocks: bool) -> None:
    """What the notifier would post to SLACK_ALERT_CHANNEL, as a person would see it in Slack."""
    from bot.alerts.message import rendered_stored

    postable = [signal for signal in signals if signal.status != Status.SUPPRESSED]
    print(f"\nThe {len(postable)} alerts sesguard would post to Slack (suppressed signals are stored, not posted):")
    for signal in postable:
        _, blocks, _ = rendered_stored(store, signal.signal_id, settings)
        print("\n" + "─" * 100 + "\n" + readable(blocks))
        print(f"\nOpen it in Slack's Block Kit Builder: {builder_url(blocks)}")
        if show_blocks:
            print("\nBlock Kit (one block a line):\n[")
            print(",\n".join("  " + json.dumps(block, ensure_ascii=False) for block in blocks) + "\n]")
