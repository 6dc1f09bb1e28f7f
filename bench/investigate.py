"""Investigate from the click to the summary in the alert's thread (SPEC §6), behind a slow CloudTrail.

    python bench/investigate.py                       # 500 events, 150 ms per LookupEvents answer, 3 runs
    python bench/investigate.py --events 2000 --latency 0.3 --runs 1
    python bench/investigate.py --identity role       # an EC2 role session: looked up by key and by name

The Slack app runs as `sesguard serve` runs it (the WSGI app on a local port, requests signed as Slack
signs them), against the Slack stand-in and the CloudTrail stand-in of the tests, which answers each
LookupEvents request after `--latency` seconds and enforces the API's 2 requests a second per account
and region. The identity's enumeration is an alert in the channel; in CloudTrail it has `--events` calls
in the window, among calls of 300 other identities. Each run clicks Investigate on a fresh store and
times the acknowledgement (Slack allows 3 s) and the summary's arrival in the thread, and counts the
LookupEvents requests it took. Nothing here is a test: the figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.cloudtrail_api import FakeCloudTrail  # noqa: E402
from tests.support import records  # noqa: E402
from tests.support.attack_story import KEY, attack, call  # noqa: E402
from tests.support.local_aws import OWN_ACCOUNT, OWN_KEY, OWN_SECRET  # noqa: E402
from tests.support.slack_harness import CHANNEL, TRIAGER, Harness, migrated_sqlite, store_signals  # noqa: E402

INVESTIGATE = "sesguard.investigate"
ACK_LIMIT_SECONDS = 3.0
GOAL_SECONDS = 10.0


def story_with(events: int, identity: str):
    """The attack, its identity making `events` calls in the window (the enumeration's own included)."""
    story = attack()
    if identity == "role":
        session = records.ec2_role(session="i-0bench", account=OWN_ACCOUNT)
        story.enumeration = [call(session, "GetSendQuota", story.now, 50),
                             call(session, "ListIdentities", story.now, 49)]
        story.other = [call(session, "CreateUser", story.now, 40, source="iam.amazonaws.com", write=True)]
        caller = session
    else:
        caller = records.iam_user("mallory", account=OWN_ACCOUNT, key=KEY)
    missing = events - len(story.enumeration) - len(story.other)
    story.other += [call(caller, "DescribeInstances", story.now, 45 - i * 40 / missing, source="ec2.amazonaws.com")
                    for i in range(missing)]
    return story


def one_run(events: int, latency: float, identity: str) -> dict:
    api = FakeCloudTrail(latency=latency)
    api.add_account(OWN_ACCOUNT, OWN_KEY, OWN_SECRET)
    url = api.start()
    folder = Path(tempfile.mkdtemp(prefix="sesguard-bench-investigate-"))
    os.environ.update({"AWS_ENDPOINT_URL_CLOUDTRAIL": url, "AWS_ENDPOINT_URL_STS": url, "AWS_ACCESS_KEY_ID": OWN_KEY,
                       "AWS_SECRET_ACCESS_KEY": OWN_SECRET, "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_CONFIG_FILE": str(folder / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(folder / "none"),
                       "AWS_EC2_METADATA_DISABLED": "true"})
    try:
        story = story_with(events, identity)
        api.add_events(*story.everything)
        with Harness(migrated_sqlite(folder), auto_investigate="off") as bot:
            [signal_id] = store_signals(bot.store, *story.enumeration)
            bot.post_alerts()
            ts = bot.alert(signal_id).slack_ts
            started = time.monotonic()
            reply = bot.click(INVESTIGATE, TRIAGER, CHANNEL, ts)
            acked = time.monotonic() - started
            assert reply.status == 200, reply
            while not any((m.metadata or {}).get("event_payload", {}).get("part") == "summary"
                          for m in bot.slack.replies(CHANNEL, ts)):
                time.sleep(0.01)
            summarised = time.monotonic() - started
            bot.settle()
        lookups = api.lookups()
        return {"ack": acked, "summary": summarised, "requests": len(lookups),
                "throttled": sum(1 for r in lookups if r.error), "busiest": api.busiest_window(),
                "kinds": sorted({r.params["LookupAttributes"][0]["AttributeKey"] for r in lookups})}
    finally:
        api.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=500, help="the identity's calls in the window (default 500)")
    parser.add_argument("--latency", type=float, default=0.15, help="seconds per LookupEvents answer (default 0.15)")
    parser.add_argument("--runs", type=int, default=3, help="runs, each on a fresh store (default 3)")
    parser.add_argument("--identity", choices=("user", "role"), default="user",
                        help="an IAM user with a long-term key (default) or an EC2 role session")
    args = parser.parse_args()
    results = [one_run(args.events, args.latency, args.identity) for _ in range(args.runs)]
    for number, result in enumerate(results, 1):
        print(f"run {number}: ack {result['ack']:.2f} s, summary in the thread {result['summary']:.2f} s, "
              f"{result['requests']} LookupEvents requests ({', '.join(result['kinds'])}), "
              f"{result['throttled']} throttled, at most {result['busiest']} in any second")
    summary = statistics.median(r["summary"] for r in results)
    slowest_ack = max(r["ack"] for r in results)
    print(f"{args.identity}, {args.events} events, {args.latency * 1000:.0f} ms per answer: median {summary:.2f} s "
          f"from the click to the summary (goal {GOAL_SECONDS:g} s), slowest ack {slowest_ack:.2f} s "
          f"(Slack allows {ACK_LIMIT_SECONDS:g} s)")
    return 0 if slowest_ack < ACK_LIMIT_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
