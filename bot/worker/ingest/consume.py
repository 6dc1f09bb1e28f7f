"""The SQS consumer (SESGUARD_SOURCE=sqs, SPEC §7): S3 notifications of CloudTrail log files and EventBridge
CloudTrail events, from SESGUARD_SQS_QUEUE_URL, into the store and on to Slack.

- Long polling (20 s), batches of 10. Each message is understood by `detection.sources.sqs`; an object it
  names is read from S3 with `scan`'s reader and limits (the pre-check on each record's eventSource before
  any record is parsed), an EventBridge event's `detail` is the record.
- Stored in batches: after a receive that came back full, the consumer takes what else the queue holds at
  once (no waiting), up to RECEIVES_PER_STORE receives, and detects and stores them together — one lease,
  one detection and one health write per account for up to a hundred messages, where a transaction's
  cost is set by the identities it touches more than by the calls. A queue that trickles is stored as
  each message comes: the latency stays that of one receive.
- A message is deleted only after its calls are stored. One that cannot be used (not a notification, an
  object that is gone, truncated or unreadable) is counted, logged and left alone: the queue's redrive
  policy moves it to the dead-letter queue after its maxReceiveCount; the rest of its batch goes on.
  A message's calls are stored all or none, so a message left is never half-used.
- While a batch is worked on, its messages' visibility is extended every third of the queue's visibility
  timeout: a long read is not handed to another consumer half-way. A consumer that dies simply stops
  extending, and the messages come back to the queue for another.
- Several consumers (threads, processes, hosts) may share one queue. The store keeps each record once
  (eventID and content), and detection of an account is serialised through a lease per account, so that
  two consumers that get calls of one new identity at once raise one signal, not two.
- With SESGUARD_BACKFILL_SOURCE, consuming waits until that source's places are backfilled (the worker's
  poll job does it, `bot.worker.ingest.backfill`): an event stored before would start its account's observation
  and the backfilled history would no longer be its baseline.
- Health: the row `sqs`/`*`/`*` of `poll_state` records every receive that worked; `queue_state` the
  backlog SQS reports (at most once a minute) and the age of the oldest message of the latest batch.
No endpoint is named here: boto3 honours AWS_ENDPOINT_URL_SQS and AWS_ENDPOINT_URL_S3.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from sqlmodel import col, select

from bot.config.logs import summary
from bot.config.settings import Settings
from bot.store.lease import Lease
from bot.store.outbox import Renewal
from bot.worker.ingest import poll_state
from bot.worker.ingest.backfill import backfill_pass
from bot.worker.ingest.handover import notify_pending, page_pending_pass
from bot.worker.tables import SOURCE_ROW, PollState, QueueState
from detection.record import Call
from detection.scan import detect
from detection.sources.files import scan_file, scan_records
from detection.sources.pulled import AccountRegion, describe_aws_error
from detection.sources.sqs import EVENT, IGNORED, OBJECTS, UNUSABLE, key_account, parse_message
from detection.store import Store, get_stored, utcnow

log = logging.getLogger(__name__)

SOURCE_NAME = "sqs"
BATCH = 10  # ReceiveMessage's maximum
# Full receives gathered into one store (up to 100 messages): a backlog drains in few transactions, and
# the visibility heartbeat still covers the lot (ten ChangeMessageVisibilityBatch entries a call).
RECEIVES_PER_STORE = 10
LONG_POLL_SECONDS = 20  # ReceiveMessage's longest wait
ATTRIBUTES_EVERY = timedelta(minutes=1)
DEFAULT_VISIBILITY = 30  # SQS's default VisibilityTimeout, when the queue's cannot be read
RETRY_SECONDS = (1, 2, 5, 10, 30)  # after a failed receive, growing
_QUEUE_REGION = re.compile(r"https?://sqs[.-]([a-z0-9-]+)\.amazonaws\.com")
_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10,
                 read_timeout=LONG_POLL_SECONDS + 10, user_agent_extra="sesguard")


def detection_lease_name(account: str) -> str:
    return f"detect:{SOURCE_NAME}:{account}"


@dataclass
class BatchResult:
    received: int = 0
    stored: int = 0  # messages whose calls are stored (and which were deleted)
    ignored: int = 0
    unusable: int = 0
    new_calls: int = 0
    signals: int = 0
    foreign_records: int = 0  # records of another account than the one their object's key names: skipped
    problems: list[str] = field(default_factory=list)


@dataclass
class _Message:
    id: str
    receipt: str
    sent_at: float | None
    body: object = None
    calls: list[Call] = field(default_factory=list)
    kind: str = UNUSABLE
    why: str = ""
    foreign: int = 0  # records of another account than their object's key names: bad, skipped


class QueueConsumer:
    def __init__(self, settings: Settings, store: Store, sqs=None, s3=None, wait_seconds: int = LONG_POLL_SECONDS):
        self.settings, self.store = settings, store
        self.queue_url = settings.queue_url
        region = _queue_region(self.queue_url) or boto3.Session().region_name or settings.aws_regions[0]
        self.sqs = sqs or boto3.client("sqs", region_name=region, config=_CONFIG)
        self.s3 = s3 or boto3.client("s3", region_name=region)
        self.wait_seconds = wait_seconds
        self._visibility: int | None = None
        self._attributes_at: datetime | None = None

    # ── the loop ─────────────────────────────────────────────────────────────────────────────────

    def run(self, stop: threading.Event, after_batch=None) -> None:
        """Consume until `stop`; `after_batch(result)` runs after each batch that stored something."""
        failures = 0
        while not stop.is_set():
            try:
                result = self.consume_batch(stop)
                failures = 0
            except Exception as exc:  # SQS or the store unreachable: recorded, retried, never fatal
                log.warning("consuming %s failed: %s", self.queue_url, describe_aws_error(exc))
                self._record(error=f"receiving from the queue failed: {describe_aws_error(exc)}")
                stop.wait(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)])
                failures += 1
                continue
            if after_batch is not None and result.stored:
                after_batch(result)

    def drain(self, stop: threading.Event | None = None) -> BatchResult:
        """Batches until the queue answers none (for `poll --once` and tests); the totals."""
        stop = stop or threading.Event()
        total = BatchResult()
        while not stop.is_set():
            result = self.consume_batch(stop, wait_seconds=min(self.wait_seconds, 1))
            for name in ("received", "stored", "ignored", "unusable", "new_calls", "signals", "foreign_records"):
                setattr(total, name, getattr(total, name) + getattr(result, name))
            total.problems += result.problems
            if not result.received:
                return total
        return total

    # ── one batch ────────────────────────────────────────────────────────────────────────────────

    def consume_batch(self, stop: threading.Event, wait_seconds: int | None = None) -> BatchResult:
        """One receive (waiting up to `wait_seconds` for a message), and while receives come back full, what
        else the queue holds at once (RECEIVES_PER_STORE in all): read, detected and stored together."""
        messages = self._receive(self.wait_seconds if wait_seconds is None else wait_seconds)
        full = len(messages) == BATCH
        for _ in range(RECEIVES_PER_STORE - 1):
            if not full or stop.is_set():
                break
            more = self._receive(0)
            full = len(more) == BATCH
            messages += more
        result = BatchResult(received=len(messages))
        if not messages:
            self._record(received=messages)
            return result
        with _heartbeat(self.sqs, self.queue_url, messages, self.visibility()):
            for message in messages:
                self._read_guarded(message)
            usable = [m for m in messages if m.kind in (OBJECTS, EVENT)]
            stored = self._detect(usable, result)
        done = [m for m in messages if m.kind == IGNORED] + stored
        self._delete(done)
        result.stored = len(stored)
        result.ignored = sum(m.kind == IGNORED for m in messages)
        result.unusable = sum(m.kind == UNUSABLE for m in messages)
        result.foreign_records = sum(m.foreign for m in messages)
        for message in messages:
            if message.kind == UNUSABLE:
                result.problems.append(f"message {message.id[:80]}: {message.why}")
                log.warning("left on the queue for its redrive policy: message %s: %s", message.id[:80], message.why)
        self._record(received=messages, unusable=result.unusable, ignored=result.ignored)
        return result

    def _receive(self, wait_seconds: int) -> list[_Message]:
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=BATCH, WaitTimeSeconds=wait_seconds,
            AttributeNames=["SentTimestamp"])  # (MessageSystemAttributeNames needs a newer botocore than 1.34)
        received = [_received(entry) for entry in answer.get("Messages") or [] if isinstance(entry, dict)]
        return [message for message in received if message is not None]

    def _read_guarded(self, message: _Message) -> None:
        """One message's reading, whatever it holds: a message that breaks it is unusable, counted and left to
        the redrive policy, and the rest of its batch is stored and deleted as if it had not come (SPEC §7)."""
        try:
            self._read(message)
        except Exception as exc:
            log.exception("reading SQS message %s failed", message.id[:80])
            message.kind, message.calls = UNUSABLE, []
            message.why = f"it could not be read ({type(exc).__name__}: {str(exc)[:200]})"

    def _read(self, message: _Message) -> None:
        parsed = parse_message(message.body)
        message.kind, message.why = parsed.kind, parsed.why
        if parsed.kind == EVENT:
            # The detail as it is: never written back to JSON, which a deep one could not be (orjson writes
            # about 254 levels of the 1,024 it reads).
            scanned = scan_records(f"SQS message {message.id[:80]}", [parsed.record], self.settings.identity_key)
            message.calls = scanned.calls
            for problem in scanned.bad:
                log.warning("skipped SQS message %s: %s", message.id[:80], problem)
        elif parsed.kind == OBJECTS:
            strangers = sorted({bucket for bucket, _ in parsed.objects} - self.settings.readable_trail_buckets)
            if strangers:  # a notification names any bucket: one of the sender's choosing is never read
                message.kind = UNUSABLE
                message.why = (f"it names bucket {strangers[0]}, which is not a trail bucket sesguard reads "
                               f"(SESGUARD_TRAIL_BUCKETS, or an s3:// SESGUARD_BACKFILL_SOURCE)")
                return
            for bucket, key in parsed.objects:
                unreadable = self._read_object(message, bucket, key)
                if unreadable:  # all or none: the message is left whole, nothing of it stored
                    message.kind, message.why, message.calls = UNUSABLE, unreadable, []
                    return

    def _read_object(self, message: _Message, bucket: str, key: str) -> str | None:
        url = f"s3://{bucket}/{key}"
        try:
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
            with closing(body):
                scanned = scan_file(url, body.read, self.settings.identity_key)
        except (ClientError, BotoCoreError) as exc:
            return f"{url[:300]}: {describe_aws_error(exc)}"
        if scanned.error:  # truncated, damaged, too large: it would be the same next time
            return f"{url[:300]}: {scanned.error}"
        for problem in scanned.bad[:20]:
            log.warning("skipped %s", problem)
        # CloudTrail writes an account's records under that account's folder: a record of another account in
        # it was written by someone else (the bucket's writers), and is a bad record, counted, never detected.
        account = key_account(key)
        foreign = [call for call in scanned.calls if call.account_id != account]
        if foreign:
            message.foreign += len(foreign)
            log.warning("skipped %d records in %s that name another account than its key's (%s)",
                        len(foreign), url[:300], account)
        message.calls.extend(call for call in scanned.calls if call.account_id == account)
        return None

    def _detect(self, usable: list[_Message], result: BatchResult) -> list[_Message]:
        """Detect per account under the account's lease; the messages whose every account is stored."""
        by_account: dict[str, list[Call]] = {}
        for message in usable:
            for call in message.calls:
                by_account.setdefault(call.account_id, []).append(call)
        failed: set[str] = set()
        for account, calls in sorted(by_account.items()):
            lease = Lease(self.store, detection_lease_name(account), self.settings.lease_seconds)
            try:
                self._wait_for(lease)
                try:
                    signals, fresh = detect(calls, self.settings.tuning, self.store)
                finally:
                    lease.release()
            except Exception as exc:  # the database went away: nothing deleted, the messages come back
                log.exception("storing the calls of account %s from the queue failed", account)
                result.problems.append(f"storing account {account}'s calls failed: {type(exc).__name__}")
                failed.add(account)
                continue
            result.new_calls += len(fresh)
            result.signals += len({signal.signal_id for signal in signals})
        return [m for m in usable if not {call.account_id for call in m.calls} & failed]

    def _wait_for(self, lease: Lease) -> None:
        """Another consumer detecting the same account holds it for a moment; its lease lapses if it died."""
        deadline = time.monotonic() + self.settings.lease_seconds * 2
        while not lease.acquire():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the lease {lease.name} stayed taken")
            time.sleep(0.05)

    def _delete(self, messages: list[_Message]) -> None:
        for start in range(0, len(messages), BATCH):
            chunk = messages[start:start + BATCH]
            answer = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(number), "ReceiptHandle": m.receipt} for number, m in enumerate(chunk)])
            for failure in answer.get("Failed") or []:  # a receipt that expired: the message comes back, is
                log.warning("could not delete a stored message (%s); it will be read again and found stored",
                            str(failure.get("Code", ""))[:80])  # found stored, and deleted then

    # ── the queue ────────────────────────────────────────────────────────────────────────────────

    def visibility(self) -> int:
        if self._visibility is None:
            self._visibility = DEFAULT_VISIBILITY
            try:
                attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url,
                                                           AttributeNames=["VisibilityTimeout"])["Attributes"]
                self._visibility = max(1, int(attributes.get("VisibilityTimeout", DEFAULT_VISIBILITY)))
            except (ClientError, BotoCoreError, ValueError, KeyError) as exc:
                log.warning("cannot read the queue's visibility timeout (%s); assuming %d s",
                            describe_aws_error(exc), DEFAULT_VISIBILITY)
        return self._visibility

    def _backlog(self) -> tuple[int | None, int | None]:
        try:
            attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
            return (int(attributes["ApproximateNumberOfMessages"]),
                    int(attributes["ApproximateNumberOfMessagesNotVisible"]))
        except (ClientError, BotoCoreError, ValueError, KeyError) as exc:
            log.warning("cannot read the queue's backlog: %s", describe_aws_error(exc))
            return None, None

    def _record(self, received: list[_Message] | None = None, unusable: int = 0, ignored: int = 0,
                error: str | None = None) -> None:
        """Health: the receive worked (or failed with `error`); the queue's figures."""
        now = utcnow()
        if error is not None:
            poll_state.record_failure(self.store, SOURCE_NAME, AccountRegion(*SOURCE_ROW), error)
            return
        poll_state.record_source_success(self.store, SOURCE_NAME)
        backlog = None
        if self._attributes_at is None or now - self._attributes_at >= ATTRIBUTES_EVERY:
            backlog = self._backlog()
            self._attributes_at = now
        sent = [m.sent_at for m in received or [] if m.sent_at is not None]
        with self.store.session() as session:
            self.store.insert_ignoring_duplicates(session, QueueState, [{"queue_url": self.queue_url}])
            row = get_stored(session, QueueState, self.queue_url, with_for_update=self.store.is_postgres)
            if backlog is not None and backlog != (None, None):
                row.backlog, row.in_flight, row.attributes_at = backlog[0], backlog[1], now
            if received:
                row.oldest_received_seconds = max(0.0, now.timestamp() - min(sent)) if sent else None
                row.received_at = now
            row.unusable += unusable
            row.ignored += ignored
            session.add(row)
            session.commit()


def _heartbeat(sqs, queue_url: str, messages: list[_Message], visibility: int) -> Renewal:
    """Extends the batch's visibility every third of the timeout while the batch is worked on."""

    def extend() -> None:
        for start in range(0, len(messages), BATCH):  # the call takes ten entries at most
            sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=[
                {"Id": str(number), "ReceiptHandle": m.receipt, "VisibilityTimeout": visibility}
                for number, m in enumerate(messages[start:start + BATCH])])

    return Renewal(extend, timedelta(seconds=visibility), "the visibility of a batch",
                   errors=(ClientError, BotoCoreError), describe=describe_aws_error, thread_name="sqs-visibility")


def _received(entry: dict) -> _Message | None:
    message_id, receipt = entry.get("MessageId"), entry.get("ReceiptHandle")
    if not isinstance(message_id, str) or not isinstance(receipt, str):
        return None
    sent = (entry.get("Attributes") or {}).get("SentTimestamp")
    try:
        sent_at = int(sent) / 1000 if sent is not None else None
    except (TypeError, ValueError):
        sent_at = None
    return _Message(message_id, receipt, sent_at, entry.get("Body"))


def _queue_region(url: str) -> str | None:
    match = _QUEUE_REGION.match(url)
    return match[1] if match else None


def backfill_done(store: Store, source_name: str) -> bool:
    """The backfill source has listed its places and each was backfilled or tried (a place that cannot be
    read, such as an account whose role is missing, must not hold up every other account's alerts)."""
    with store.session() as session:
        rows = list(session.exec(select(PollState).where(PollState.source == source_name,
                                                         col(PollState.retired_at).is_(None))))
    whole = [row for row in rows if (row.account_id, row.region) == SOURCE_ROW]
    places = [row for row in rows if (row.account_id, row.region) != SOURCE_ROW]
    return bool(whole and whole[0].last_success_at and all(row.watermark or row.last_error_at for row in places))


def wait_for_backfill(store: Store, source_name: str, stop: threading.Event, every: float = 2.0) -> bool:
    """Until the backfill is done (True) or `stop` (False)."""
    while not backfill_done(store, source_name):
        if stop.wait(every):
            return False
    return True


# ── the worker and the command ───────────────────────────────────────────────────────────────────────


def consume_until_stopped(settings: Settings, store: Store, backfill, stop: threading.Event) -> None:
    """The worker's consumer thread: after the backfill (when there is one), consume; each batch that
    raised signals is posted at once (the notifier's claims keep a post to one process), so that an
    alert reaches Slack seconds after its message reached the queue."""
    if backfill is not None and not wait_for_backfill(store, backfill.name, stop):
        return
    consumer = QueueConsumer(settings, store)
    log.info("consuming %s", settings.sqs_queue_url)

    def after_batch(result: BatchResult) -> None:
        if result.signals and not stop.is_set():
            notify_pending(store, settings, stop)

    consumer.run(stop, after_batch)


def queue_command(settings: Settings, store: Store, backfill, once: bool, stop: threading.Event) -> int:
    """`sesguard poll [--once]` with SESGUARD_SOURCE=sqs: the backfill of places never backfilled, then the
    queue drained once (exit 0, or 1 when something failed) or consumed until stopped."""
    ok = True
    if backfill is not None:
        result = backfill_pass(settings, store, backfill, stop)
        ok = result.ok
        for line, fields in result.entries():
            summary(line, fields.get("outcome") == "failed", **fields)
    if not once:
        consume_until_stopped(settings, store, backfill, stop)
        return 0
    try:
        drained = QueueConsumer(settings, store, wait_seconds=1).drain(stop)
    except Exception as exc:  # SQS or the store unreachable: the pass failed, exit 1
        summary(f"sqs: FAILED: {describe_aws_error(exc)}", True, part="queue", outcome="failed",
                error=describe_aws_error(exc))
        return 1
    summary(f"sqs {settings.sqs_queue_url}: {drained.received} messages, {drained.stored} stored, "
            f"{drained.ignored} ignored, {drained.unusable} left for the redrive policy, "
            f"{drained.new_calls} new matching calls, {drained.signals} signals, "
            f"{drained.foreign_records} records of another account than their key's skipped",
            part="queue", queue_url=settings.sqs_queue_url, received=drained.received, stored=drained.stored,
            ignored=drained.ignored, unusable=drained.unusable, new_calls=drained.new_calls,
            signals=drained.signals, foreign_records=drained.foreign_records)
    notified, error = notify_pending(store, settings, stop)
    ok = ok and error is None and (notified is None or notified.ok) and not drained.problems
    if settings.pagerduty_routing_key is not None:
        paged, page_error = page_pending_pass(store, settings)
        ok = ok and page_error is None and paged is not None and paged.ok
    return 0 if ok else 1
