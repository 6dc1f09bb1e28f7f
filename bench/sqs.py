"""From the queue to the store (SPEC §7): how many CloudTrail events a second the SQS consumer takes in.

    python bench/sqs.py                                     # 100 log files of 1,000 records, 2,000 EventBridge events
    python bench/sqs.py --objects 500 --records 200 --consumers 1,2 --database postgresql+psycopg://…/bench
    python bench/sqs.py --compare /tmp/sesguard-before      # also a checkout of the code before a change

moto's server (SQS and S3, real HTTP) runs as a process of its own. The S3 path: a trail bucket notifies
the queue (moto delivers S3's own event notifications), and `--objects` gzipped CloudTrail log files of
`--records` records are put, a tenth of them SES enumeration calls by 50 identities. The EventBridge
path: `--events` "AWS API Call via CloudTrail" events of SES calls, sent in batches of 10 (an EventBridge
rule delivers only what its pattern matches: SES calls). For each number of `--consumers` (threads with a
store connection and clients of their own, as processes would have), run in a process of its own from the
checkout measured (`--compare`: another, side by side in the same run): a fresh store, the queue filled,
then drained, timed from the first receive to the last delete. moto's share is the time the consumers spent
inside SQS and S3 calls (the slowest consumer's least); records a second are given with and without it.
Printed: messages, records read and matching events stored per second. Nothing here is a test: the figures
go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if "--child" not in sys.argv:
    sys.path.insert(0, str(ROOT))
    from bench.poll import fresh_store
    from tests.support import records

ACCOUNT = "111111111111"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(folder: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    with open(folder / "moto.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                   stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process, url
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("moto's server did not start") from None
            time.sleep(0.1)


def trail_records(count: int, rng: random.Random) -> list[dict]:
    out = []
    for _ in range(count):
        who = records.iam_user(f"user{rng.randrange(50)}", account=ACCOUNT)
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - rng.uniform(60, 3600)))
        if rng.random() < 0.1:
            out.append(records.record(who, "GetSendQuota", account=ACCOUNT, time=when))
        else:
            out.append(records.record(who, "DescribeInstances", source="ec2.amazonaws.com", account=ACCOUNT, time=when))
    return out


def eventbridge(record: dict) -> str:
    return json.dumps({"version": "0", "id": str(uuid.uuid4()), "detail-type": "AWS API Call via CloudTrail",
                       "source": "aws.ses", "account": ACCOUNT, "time": record["eventTime"], "region": "us-east-1",
                       "resources": [], "detail": record})


def fill(url: str, kind: str, args, rng: random.Random) -> tuple[str, int, int]:
    """A fresh queue holding the path's messages; (queue URL, messages, matching records)."""
    import boto3

    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=url)
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=url)
    name = f"bench-{uuid.uuid4().hex[:10]}"
    queue_url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "120"})["QueueUrl"]
    matching = 0
    if kind == "s3":
        arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        s3.create_bucket(Bucket=name)
        s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
        day = time.strftime("%Y/%m/%d", time.gmtime())
        for number in range(args.objects):
            batch = trail_records(args.records, rng)
            matching += sum(r["eventSource"] == "ses.amazonaws.com" for r in batch)
            key = f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/{day}/{ACCOUNT}_CloudTrail_us-east-1_{number}.json.gz"
            s3.put_object(Bucket=name, Key=key, Body=gzip.compress(json.dumps({"Records": batch}).encode()))
        return queue_url, args.objects + 1, matching  # and S3's test event
    bodies = []
    for _ in range(args.events):
        who = records.iam_user(f"user{rng.randrange(50)}", account=ACCOUNT)
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - rng.uniform(60, 3600)))
        bodies.append(eventbridge(records.record(who, "GetSendQuota", account=ACCOUNT, time=when)))
    for start in range(0, len(bodies), 10):
        sqs.send_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies[start:start + 10])])
    return queue_url, len(bodies), len(bodies)


def run(url: str, kind: str, consumers: int, args, folder: Path, code: str) -> dict:
    queue_url, messages, matching = fill(url, kind, args, random.Random(7))
    store = fresh_store(args.database, folder)
    store.engine.dispose()
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(
        {"code": code, "queue_url": queue_url, "database": store.url, "consumers": consumers})],
        cwd=code, capture_output=True, text=True, env=os.environ.copy())
    if done.returncode:
        raise SystemExit(f"the consumers failed: {done.stderr[-3000:]}")
    drained = json.loads(done.stdout.strip().splitlines()[-1])
    for problem in drained["problems"]:
        print(f"  {kind}, {consumers} consumers: {problem}", file=sys.stderr)
    return {"kind": kind, "consumers": consumers, "messages": messages, "matching": matching, "code": code,
            "records": args.objects * args.records if kind == "s3" else messages, **drained}


def child(arguments: dict) -> None:
    """The consumers, importing sesguard from the checkout measured; one JSON line of figures."""
    sys.path.insert(0, arguments["code"])
    import sqlalchemy as sa

    from bot.worker.ingest.consume import QueueConsumer
    from detection.store import EventRow, Store
    from tests.support.local_aws import worker_settings

    store = Store(arguments["database"])
    # fill() names the bucket as the queue
    settings = worker_settings(database_url=store.url, source="sqs", sqs_queue_url=arguments["queue_url"],
                               learning_days=0, trail_buckets=[arguments["queue_url"].rsplit("/", 1)[-1]])
    consumers = arguments["consumers"]
    stores = [Store(store.url) for _ in range(consumers)]
    results = []
    waited = []  # seconds each consumer spent waiting for SQS's and S3's answers

    def consume(each_store) -> None:
        consumer = QueueConsumer(settings, each_store, wait_seconds=1)
        me, clock = threading.current_thread(), {"in_call": 0.0, "since": None}

        def before(**_):
            if threading.current_thread() is me:
                clock["since"] = time.monotonic()

        def after(**_):
            if threading.current_thread() is me and clock["since"] is not None:
                clock["in_call"] += time.monotonic() - clock["since"]
                clock["since"] = None

        for client in (consumer.sqs, consumer.s3):
            client.meta.events.register("before-call", before)
            client.meta.events.register("after-call", after)
        results.append(consumer.drain())
        waited.append(clock["in_call"] - 1.0)  # less the final empty receive's wait

    started = time.monotonic()
    threads = [threading.Thread(target=consume, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # each drain ends with one empty receive of up to 1 s: not part of the work
    seconds = time.monotonic() - started - 1.0
    with store.session() as session:
        stored = session.execute(sa.select(sa.func.count()).select_from(EventRow)).scalar_one()
    for s in [store, *stores]:
        s.engine.dispose()
    handled = sum(r.stored + r.ignored for r in results)
    print(json.dumps({"handled": handled, "stored": stored, "seconds": seconds, "moto": min(waited),
                      "unusable": sum(r.unusable for r in results),
                      "problems": [p for r in results for p in r.problems[:5]]}))


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=100, help="CloudTrail log files (S3 path)")
    parser.add_argument("--records", type=int, default=1000, help="records per log file")
    parser.add_argument("--events", type=int, default=2000, help="EventBridge events")
    parser.add_argument("--consumers", default="1,2", help="comma-separated numbers of consumers")
    parser.add_argument("--database", help="a PostgreSQL URL (its public schema is emptied); default: SQLite")
    parser.add_argument("--compare", action="append", default=[], help="another checkout to measure alongside")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sesguard-bench-sqs-"))
    moto, url = start_moto(folder)
    os.environ.update({"AWS_ENDPOINT_URL_SQS": url, "AWS_ENDPOINT_URL_S3": url, "AWS_ACCESS_KEY_ID": "bench",
                       "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_CONFIG_FILE": str(folder / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(folder / "none"),
                       "AWS_EC2_METADATA_DISABLED": "true"})
    rows = []
    try:
        for kind in ("s3", "eventbridge"):
            for consumers in [int(value) for value in args.consumers.split(",")]:
                for code in [str(ROOT), *args.compare]:
                    rows.append(run(url, kind, consumers, args, folder, code))
    finally:
        moto.terminate()
        moto.wait()
    print(f"store: {'PostgreSQL' if args.database else 'SQLite'}; S3 path: {args.objects} log files of "
          f"{args.records} records (a tenth SES calls); EventBridge path: {args.events} SES events")
    print()
    print("| code | path | consumers | messages | seconds | of which in SQS/S3 calls (moto) | messages/s "
          "| records read/s | records/s without moto's share | matching events stored/s | stored = matching |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        seconds = max(row["seconds"], 1e-3)
        own = max(seconds - row["moto"], 1e-3)
        print(f"| {'this' if row['code'] == str(ROOT) else row['code']} | {row['kind']} | {row['consumers']} "
              f"| {row['messages']} | {seconds:.1f} | {row['moto']:.1f} | {row['handled'] / seconds:.0f} "
              f"| {row['records'] / seconds:.0f} | {row['records'] / own:.0f} | {row['stored'] / seconds:.0f} | "
              f"{'yes' if row['stored'] == row['matching'] and row['handled'] >= row['messages'] else 'NO'} |")
        # A message handed to two consumers (SQS delivers at least once; moto's server too, under load) is
        # handled twice and stored once.
        if row["stored"] != row["matching"] or row["handled"] != row["messages"]:
            print(f"  (stored {row['stored']} of {row['matching']} matching; handled {row['handled']} of "
                  f"{row['messages']} messages; {row['unusable']} left unusable)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
