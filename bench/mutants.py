"""A mutation check: does the test suite notice when detection or triage is broken on purpose?

    python bench/mutants.py                   # every mutant, one at a time (8–12 minutes on two cores)
    python bench/mutants.py --only rule-any-event-source notifier-no-channel-search
    python bench/mutants.py --list            # the mutants and what each one breaks
    python bench/mutants.py --check           # does every mutant still apply to the source?

Each mutant below is one deliberate, meaningful break of a behaviour the SPEC describes: the exact
text it replaces, once, in one file, and what that breaks. For each mutant the script copies the tree to
a temporary folder (once), writes the broken file there, runs the fast tests that cover that module with
`pytest -x`, and puts the file back. The real files are never edited, so an interrupted run leaves
nothing behind. A mutant is *killed* when a test fails; one that passes every test has *survived*: a
behaviour the tests do not pin down. A mutant that no test can tell from the original says why in its
`equivalent` note; it is expected to survive, and the run fails if one is killed (its note is wrong).

The list is hand-written rather than generated (mutmut makes hundreds of mutants of these modules, most
of its survivors changes no behaviour depends on, and takes tens of minutes on two cores): each one here
is a bug someone could plausibly write, named in the words of the SPEC. `tests/test_mutants.py`
checks that every mutant still applies to the current source, so that the list cannot silently rot.

The tests run with the caller's environment: with TEST_DATABASE_URL set, the store's tests run on
PostgreSQL too (a dropped row lock shows there). Exit 0 when every mutant that is not noted equivalent
was killed and every noted one survived.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The fast test files that cover each module, quickest first (pytest -x stops at the first failure).
# Never the reliability tests: they start real processes and take minutes.
_DETECTION = "tests/detection/"
COVERING: dict[str, tuple[str, ...]] = {
    "detection/rule.py": (_DETECTION + "test_rule.py", _DETECTION + "test_record.py", _DETECTION + "test_baseline.py"),
    "detection/record.py": (_DETECTION + "test_record.py", _DETECTION + "test_signals.py",
                            _DETECTION + "test_baseline.py", _DETECTION + "test_order_independence.py"),
    "detection/baseline.py": (_DETECTION + "test_baseline.py", _DETECTION + "test_order_independence.py",
                              _DETECTION + "test_store.py"),
    "detection/signals.py": (_DETECTION + "test_signals.py", _DETECTION + "test_baseline.py",
                             _DETECTION + "test_store.py"),
    "detection/suppression.py": (_DETECTION + "test_suppression.py",),
    "detection/store.py": (_DETECTION + "test_suppression.py", _DETECTION + "test_store.py"),
    "detection/scan.py": (_DETECTION + "test_bad_input.py", _DETECTION + "test_order_independence.py",
                          _DETECTION + "test_baseline.py"),
    "bot/triage/states.py": ("tests/alerts/test_blocks.py", "tests/triage/test_actions.py",
                             "tests/contain/test_respond.py"),
    "bot/triage/changes.py": ("tests/triage/test_actions.py", "tests/slack/test_commands.py"),
    "bot/alerts/notifier.py": ("tests/alerts/test_notifier.py",),
    "bot/alerts/tables.py": ("tests/alerts/test_notifier.py",),
    "bot/store/outbox.py": ("tests/alerts/test_notifier.py",),
    "bot/slack/blocks.py": ("tests/alerts/test_blocks.py", "tests/triage/test_actions.py"),
    "bot/alerts/blocks.py": ("tests/alerts/test_blocks.py", "tests/triage/test_actions.py"),
    "bot/contact/questions.py": ("tests/contact/test_contact.py",),
    "detection/sources/lookup.py": ("tests/worker/test_lookup.py",),
    "detection/sources/s3_trail.py": ("tests/worker/test_s3.py",),
    "bot/config/settings.py": ("tests/config/test_settings.py",),
}


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # relative to the repository
    original: str  # found exactly once in the file
    replacement: str
    breaks: str  # what goes wrong, in the SPEC's words
    equivalent: str = ""  # why no test can tell this mutant from the original (then it is expected to survive)

    @property
    def tests(self) -> tuple[str, ...]:
        return COVERING[self.path]


RULE, RECORD, BASELINE = "detection/rule.py", "detection/record.py", "detection/baseline.py"
SIGNALS, SUPPRESSION, STORE, SCAN = ("detection/signals.py", "detection/suppression.py", "detection/store.py",
                                     "detection/scan.py")
STATES, CHANGES = "bot/triage/states.py", "bot/triage/changes.py"
NOTIFIER, BLOCKS, ALERT = "bot/alerts/notifier.py", "bot/slack/blocks.py", "bot/alerts/blocks.py"
ALERT_TABLES = "bot/alerts/tables.py"
CONTACT, OUTBOX = "bot/contact/questions.py", "bot/store/outbox.py"
LOOKUP, S3_TRAIL, SETTINGS = "detection/sources/lookup.py", "detection/sources/s3_trail.py", "bot/config/settings.py"

MUTANTS: list[Mutant] = [
    # ── the rule: matching calls ──────────────────────────────────────────────────────────────────────
    Mutant("rule-any-event-source", RULE,
           "if source == SES_SOURCE:", "if name in SES_ENUMERATION_CALLS:",
           "the event source is not checked: API Gateway's GetAccount and Cognito's ListIdentities match"),
    Mutant("rule-quotas-any-service", RULE,
           'return _object(record.get("requestParameters")).get("serviceCode") == "ses"', "return True",
           "ListServiceQuotas matches for any serviceCode (ec2, lambda, …)"),
    Mutant("rule-failed-calls-ignored", RULE,
           'source = record.get("eventSource")',
           'source = None if record.get("errorCode") else record.get("eventSource")',
           "failed calls (AccessDenied) do not match, though failed enumeration is still enumeration"),
    # ── the rule: excluded callers ────────────────────────────────────────────────────────────────────
    Mutant("rule-aws-service-allowed", RULE,
           '    if identity.get("type") == "AWSService":\n        return True\n', "",
           "AWSService callers are let through"),
    Mutant("rule-invoked-by-ignored", RULE,
           'if is_service_principal(identity.get("invokedBy")):', "if False:",
           "calls invoked by an AWS service principal (CloudFormation, Config) are not excluded"),
    Mutant("rule-console-is-a-service", RULE,
           "and principal not in CONSOLE_PRINCIPALS\n", "\n",
           "a console session (invokedBy signin.amazonaws.com) counts as an AWS service: people are excluded"),
    Mutant("rule-service-role-name-ignored", RULE,
           'return arn.split(":assumed-role/", 1)[1].startswith("AWSServiceRoleFor")', "return False",
           "without a session issuer, AWSServiceRoleFor… (Trusted Advisor) alerts on every run"),
    Mutant("rule-session-issuer-unread", RULE,
           '.get("sessionIssuer")).get("arn")', '.get("sessionIssuer")).get("ARN")',
           "the session issuer is never read: role paths, SSO roles and role keys fall back to guesses"),
    # ── the identity key ──────────────────────────────────────────────────────────────────────────────
    Mutant("key-role-by-session", RECORD,
           "return issuer or role_arn_from_session(arn) or arn or None", "return arn or None",
           "an assumed role is keyed by its session ARN: EC2, Lambda and CI re-alert on every session"),
    Mutant("key-sso-by-role", RECORD,
           "return arn or None  # an IAM Identity Center session name is the person", "return issuer or None",
           "an SSO session is keyed by its role: every person behind a permission set is one identity"),
    Mutant("record-scope-by-caller", RECORD,
           ('account = _text(record.get("recipientAccountId")) '
            'or _text(_object(record.get("userIdentity")).get("accountId"))'),
           ('account = _text(_object(record.get("userIdentity")).get("accountId")) '
            'or _text(record.get("recipientAccountId"))'),
           "the scope is the caller's account, not recipientAccountId: cross-account calls land in the wrong scope"),
    Mutant("record-console-flag-false", RECORD,
           'if str(record.get("sessionCredentialFromConsole", "")).lower() == "true":',
           'if str(record.get("sessionCredentialFromConsole", "")).lower() in ("true", "false"):',
           'sessionCredentialFromConsole "false" counts as a console session: programmatic calls score low'),
    # ── new-value detection ───────────────────────────────────────────────────────────────────────────
    Mutant("baseline-learn-forever", BASELINE,
           "silent = learn_only or call.event_time < start + self.tuning.learning",
           "silent = learn_only or call.event_time >= start",
           "learning never ends: SESGUARD_LEARNING_DAYS is ignored and nothing ever signals"),
    Mutant("baseline-learning-boundary", BASELINE,
           "silent = learn_only or call.event_time < start + self.tuning.learning",
           "silent = learn_only or call.event_time <= start + self.tuning.learning",
           "learning ends a moment after SESGUARD_LEARNING_DAYS, not exactly then"),
    Mutant("baseline-learn-only-ignored", BASELINE,
           "silent = learn_only or call.event_time", "silent = call.event_time",
           "the backfill (learn only) raises signals"),
    Mutant("baseline-never-forget", BASELINE,
           "return seen is not None and moment - seen.last_seen <= self.tuning.forget", "return seen is not None",
           "an identity is never forgotten: SESGUARD_FORGET_DAYS is ignored"),
    Mutant("baseline-forget-day-early", BASELINE,
           "moment - seen.last_seen <= self.tuning.forget",
           "moment - seen.last_seen <= self.tuning.forget - timedelta(days=1)",
           "an identity is forgotten one day early"),
    Mutant("baseline-forget-boundary", BASELINE,
           "moment - seen.last_seen <= self.tuning.forget", "moment - seen.last_seen < self.tuning.forget",
           "an identity is forgotten exactly SESGUARD_FORGET_DAYS after its last call, not after more"),
    Mutant("baseline-forget-from-first-call", BASELINE,
           "moment - seen.last_seen <= self.tuning.forget", "moment - seen.first_seen <= self.tuning.forget",
           "forgetting counts from the identity's first call, not its last"),
    Mutant("baseline-signal-does-not-teach", BASELINE,
           "is_known = self.is_known(key, call.event_time)\n        self._seen(key, call.event_time)\n",
           "is_known = self.is_known(key, call.event_time)\n",
           "an identity's calls outside a burst are never learned: a signal does not make it known"),
    Mutant("baseline-burst-not-seen", BASELINE,
           "    self._seen(key, call.event_time)\n            return signal", "    return signal",
           "calls that join a signal do not count as seen: forgetting counts from the burst's first call"),
    Mutant("baseline-group-off-by-one", BASELINE,
           "abs(call.event_time - signal.first_seen) <= self.tuning.group",
           "abs(call.event_time - signal.first_seen) < self.tuning.group",
           "a call exactly SESGUARD_GROUP_MINUTES after the first does not join the signal"),
    Mutant("baseline-group-from-last-call", BASELINE,
           "abs(call.event_time - signal.first_seen) <= self.tuning.group",
           "abs(call.event_time - signal.last_seen) <= self.tuning.group",
           "the group window slides with each call: a slow trickle is one signal forever"),
    Mutant("baseline-arrival-order", BASELINE,
           "calls = sorted(calls, key=lambda c: (c.event_time, c.event_id, c.content))", "calls = list(calls)",
           "calls are evaluated in the order they arrive, not in eventTime order"),
    Mutant("baseline-sightings-ignored", BASELINE,
           "self._start_observing([*calls, *sightings])", "self._start_observing(calls)",
           "an excluded caller's matching record does not start the observation of its account"),
    # ── signals and severity ──────────────────────────────────────────────────────────────────────────
    Mutant("severity-akia-dropped", SIGNALS,
           "if self.root_caller or self.long_term_keys_outside_console or len(self.regions) >= 2:",
           "if self.root_caller or len(self.regions) >= 2:",
           "a long-term access key (AKIA…) used outside the console is not high"),
    Mutant("severity-akia-in-console", SIGNALS,
           "if call.long_term_key and not call.from_console:", "if call.long_term_key:",
           "a long-term key used in a console session is high, though only keys outside one should be"),
    Mutant("severity-three-regions", SIGNALS,
           "or len(self.regions) >= 2:\n            return HIGH", "or len(self.regions) >= 3:\n            return HIGH",
           "calls in two regions are not high; it takes three"),
    Mutant("severity-last-call-decides-low", SIGNALS,
           "self.all_from_console = self.all_from_console and call.from_console",
           "self.all_from_console = call.from_console",
           "a burst is low when its last call came from the console, whatever the others did"),
    Mutant("signal-exercise-tool-unsaid", SIGNALS,
           "if self.exercise_tool:", "if False:",
           'a red-team exercise tool\'s user agent does not add the reason "red-team exercise tool"'),
    Mutant("signal-late-first-call-arn", SIGNALS,
           "self.arn, self.identity_type = call.arn, call.identity_type", "pass",
           "a first call delivered late (a later batch) does not become the signal's first call's ARN"),
    Mutant("signal-id-ignores-first-call", SIGNALS,
           'f"{account_id}\\0{identity}\\0{first_seen.isoformat()}"', 'f"{account_id}\\0{identity}"',
           "every signal of one identity gets the same ID: a forgotten and re-seen identity overwrites its old signal"),
    # ── suppressions ──────────────────────────────────────────────────────────────────────────────────
    Mutant("suppression-one-ip-inside", SUPPRESSION,
           "if ipaddress.ip_address(text) not in network:\n                return False",
           "if ipaddress.ip_address(text) in network:\n                return True",
           "a CIDR suppression covers a signal when one source IP is inside, not every one"),
    Mutant("suppression-expired-covers", SUPPRESSION,
           "return self.expires_at is None or now < self.expires_at", "return True",
           "an expired suppression still covers"),
    Mutant("suppression-account-ignored", SUPPRESSION,
           "        if self.account_id and signal.account_id != self.account_id:\n            return False\n", "",
           "a suppression for one account covers the identity in every account"),
    Mutant("suppression-no-ips-covered", SUPPRESSION,
           "    if not source_ips:\n        return False\n", "",
           "a CIDR suppression covers a signal that has no source IP at all"),
    # ── the store ─────────────────────────────────────────────────────────────────────────────────────
    Mutant("store-lifted-suppressions-apply", STORE,
           "select(SuppressionRow).where(col(SuppressionRow.lifted_at).is_(None))", "select(SuppressionRow)",
           "a lifted suppression still suppresses new signals"),
    Mutant("store-suppressed-stored-new", STORE,
           "signal.status, signal.suppression_id = Status.SUPPRESSED.value, covering.id",
           "signal.suppression_id = covering.id",
           "a covered signal is stored as new, so it is posted"),
    Mutant("store-last-seen-moves-back", STORE,
           "known_row.last_seen = max(known_row.last_seen, known.last_seen)",
           "known_row.last_seen = known.last_seen",
           "a batch of older, late-delivered calls moves an identity's last call back: it is forgotten early"),
    Mutant("store-oldest-signal-joined", STORE,
           "select(SignalRow).order_by(col(SignalRow.first_seen))",
           "select(SignalRow).order_by(col(SignalRow.first_seen).desc())",
           "a later batch's calls are matched against the identity's oldest signal, not its latest"),
    Mutant("store-events-processed-twice", STORE,
           "return [call for call in unique if call not in stored]", "return unique",
           "a record already stored is processed again (the lookback window re-reads every poll)"),
    # ── scan ──────────────────────────────────────────────────────────────────────────────────────────
    Mutant("scan-redelivery-counted-twice", SCAN,
           "return list(dict.fromkeys(calls))", "return list(calls)",
           "a record delivered twice (the same eventID, the same content) counts twice"),
    Mutant("scan-one-record-per-event-id", SCAN,
           "return list(dict.fromkeys(calls))", "return list({call.event_id: call for call in calls}.values())",
           "of two different records under one eventID, only the last to arrive counts: the answer depends on order"),
    # ── triage: the state table and its changes ───────────────────────────────────────────────────────
    Mutant("triage-escalate-from-closed", STATES,
           "Action.ESCALATE: frozenset({Status.NEW, Status.CONTACTING, Status.CONFIRMED}),",
           "Action.ESCALATE: frozenset({Status.NEW, Status.CONTACTING, Status.CONFIRMED, Status.CLOSED}),",
           "a closed alert can be escalated (and shows the button)"),
    Mutant("triage-contain-when-closed", STATES,
           "OPEN = frozenset({Status.NEW, Status.CONTACTING, Status.CONFIRMED, Status.ESCALATED})",
           "OPEN = frozenset({Status.NEW, Status.CONTACTING, Status.CONFIRMED, Status.ESCALATED, Status.CLOSED})",
           "containment (deactivate a key, revoke role sessions) applies to a closed alert"),
    Mutant("triage-no-row-lock", CHANGES,
           ("    session.execute(\n"
            "        sa.update(SignalRow).where(col(SignalRow.signal_id) == signal_id)"
            ".values(status=SignalRow.status))\n"),
           "",
           "no row lock: two clicks racing each other both act"),
    Mutant("triage-no-history-row", CHANGES,
           "    session.add(entry)\n    return entry", "    return entry",
           "a triage action records no row in the signal's history (audit)"),
    Mutant("triage-no-idempotency-check", CHANGES,
           "if not applies(action, row.status):", "if False:",
           "an action applies from any status: a double click acts twice"),
    Mutant("triage-suppression-not-audited", CHANGES,
           ('session.add(AuditEntry(actor=actor, action="suppression created", subject=row.identity, '
            'detail=detail, at=now))'),
           'AuditEntry(actor=actor, action="suppression created", subject=row.identity, detail=detail, at=now)',
           "creating a suppression writes no audit entry"),
    Mutant("triage-suppress-scope-ignored", CHANGES,
           "account_id=row.account_id if scope == SCOPE_ACCOUNT else None", "account_id=row.account_id",
           'a suppression "everywhere" covers only this account'),
    Mutant("triage-lift-twice", CHANGES,
           "if row is None or row.lifted_at is not None:", "if row is None:",
           "lifting a suppression twice lifts (and audits) it twice"),
    # ── the notifier ──────────────────────────────────────────────────────────────────────────────────
    Mutant("notifier-posts-suppressed", ALERT_TABLES,
           "return sa.and_(col(AlertPost.slack_ts).is_(None), col(SignalRow.status) != Status.SUPPRESSED.value)",
           "return col(AlertPost.slack_ts).is_(None)",
           "signals stored as suppressed are posted"),
    Mutant("notifier-no-channel-search", NOTIFIER,
           "if attempt or post.attempts > 1:", "if False:",
           "after a lost answer the signal is posted twice: the channel is not searched first"),
    Mutant("notifier-stops-on-one-message", NOTIFIER,
           "return is_transient_failure(error) or _error_code(error) in STOP_ERRORS", "return True",
           "one message Slack refuses (e.g. invalid_blocks) stops the pass: the alerts after it wait"),
    Mutant("notifier-suppression-not-rechecked", NOTIFIER,
           "covering = _covered(row, rules, now)", "covering = None",
           "a suppression made while an alert waited for Slack does not keep it out of the channel"),
    Mutant("notifier-claim-not-exclusive", OUTBOX,
           "sa.or_(self.claimed_until.is_(None), self.claimed_until < now)", "sa.true()",
           "another process's live claim is taken over: two workers post the same signal"),
    Mutant("notifier-links-unfurled", NOTIFIER,
           "unfurl_links=False, unfurl_media=False)", "unfurl_links=True, unfurl_media=True)",
           "links in an alert are unfurled: Slack fetches URLs an attacker put in CloudTrail"),
    # ── Block Kit ─────────────────────────────────────────────────────────────────────────────────────
    Mutant("blocks-lt-unescaped", BLOCKS,
           '.replace("<", "&lt;")', "",
           "`<` is not escaped: <!channel>, mentions and disguised links from CloudTrail reach Slack"),
    Mutant("blocks-section-not-cut", BLOCKS,
           "line = line[:SECTION_TEXT_LIMIT]", "line = line",
           "a line longer than a section allows is not cut: Slack refuses the message"),
    Mutant("blocks-text-not-cut", BLOCKS,
           "if len(escaped) <= limit:\n        return escaped", "if True:\n        return escaped",
           "CloudTrail values are not cut to Block Kit's limits"),
    Mutant("blocks-any-mention", BLOCKS,
           "if isinstance(user_id, str) and _USER_ID.match(user_id):", "if True:",
           "any value becomes a mention: `<!channel>` as a user ID pings the channel"),
    Mutant("alert-agents-unescaped", ALERT,
           'listing(values, limit - 2, separator="\\n• ", each=each)', '"\\n• ".join(map(str, values))',
           "bulleted values (user agents, reasons) are shown unescaped and uncut"),
    Mutant("alert-buttons-ignore-status", ALERT,
           "for action in buttons_for(status):", "for action in buttons_for(Status.NEW):",
           "the alert shows all four buttons whatever its status"),
    Mutant("contact-time-out-unmentioned", CONTACT,
           'f"<!channel> {line} Escalated." if escalate else line', 'f"{line} Escalated." if escalate else line',
           "a contact time-out escalates without mentioning the channel"),
    # ── the worker's sources and the settings ────────────────────────────────────────────────────────
    Mutant("lookup-one-budget-for-all", LOOKUP,
           'return f"cloudtrail:{acting_account()}:{region}"', 'return "cloudtrail"',
           "one 2 requests/s budget for every account and region, instead of one for each"),
    Mutant("s3-late-folder-unlisted", S3_TRAIL,
           "LATE_DELIVERY_DAYS = timedelta(days=1)", "LATE_DELIVERY_DAYS = timedelta(days=0)",
           "a log file delivered late into yesterday's folder after the watermark crossed midnight is never read"),
    Mutant("settings-triagers-any-name", SETTINGS,
           "if not _USER_ID.fullmatch(user_id):", "if not user_id:",
           "SLACK_TRIAGERS=@alice starts up silently, and then nobody may triage"),
]


# ── applying ─────────────────────────────────────────────────────────────────────────────────────────


def mutated(mutant: Mutant, root: Path = REPO) -> str:
    """The mutated text of the mutant's file; ValueError unless the original occurs exactly once."""
    source = (root / mutant.path).read_text()
    found = source.count(mutant.original)
    if found != 1:
        raise ValueError(f"{mutant.name}: the original text occurs {found} times in {mutant.path}, not once")
    return source.replace(mutant.original, mutant.replacement)


def problems(root: Path = REPO) -> list[str]:
    """Why the list no longer fits the source: an original not found exactly once, a mutant that changes
    nothing or does not compile, a missing covering test file, a name used twice."""
    found: list[str] = []
    names = [m.name for m in MUTANTS]
    found += [f"{name}: the name is used twice" for name in sorted({n for n in names if names.count(n) > 1})]
    for mutant in MUTANTS:
        if mutant.original == mutant.replacement:
            found.append(f"{mutant.name}: the replacement is the original")
        try:
            compile(mutated(mutant, root), mutant.path, "exec")
        except (ValueError, SyntaxError) as exc:
            found.append(str(exc) if isinstance(exc, ValueError) else f"{mutant.name}: does not compile: {exc}")
        found += [f"{mutant.name}: no test file {test}" for test in mutant.tests if not (root / test).is_file()]
    return found


# ── running ──────────────────────────────────────────────────────────────────────────────────────────

_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)
_SKIPPED_PARTS = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".hypothesis"}


def _ignore(folder: str, names: list[str]) -> set[str]:
    """What the copy leaves out: version control, the environment, caches, the benchmarks' data."""
    skipped = {n for n in names if n in _SKIPPED_PARTS or n.endswith(".egg-info")}
    if Path(folder).resolve() == REPO / "bench":
        skipped.add("data")
    return skipped


@dataclass
class Outcome:
    mutant: Mutant
    killed_by: str | None  # the first failing test, "timeout", or None: survived
    seconds: float

    @property
    def as_expected(self) -> bool:
        return (self.killed_by is None) == bool(self.mutant.equivalent)

    @property
    def verdict(self) -> str:
        if self.mutant.equivalent:
            if self.killed_by is None:
                return "equivalent (survived, as noted)"
            return f"NOTE WRONG: killed by {self.killed_by}"
        return f"killed by {self.killed_by}" if self.killed_by else "SURVIVED"


def _pytest(tree: Path, tests: tuple[str, ...], timeout: float) -> tuple[int | None, str]:
    """(exit code or None on time-out, output) of `pytest -x` on `tests` in the copied tree."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-rfE", "--tb=no", *tests]
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    # A session of its own, so that a time-out or Ctrl-C ends the tests' own children too.
    process = subprocess.Popen(command, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
        return process.returncode, output
    except subprocess.TimeoutExpired:
        return None, ""
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _imports_from(tree: Path) -> None:
    """The tests must import the copy, not the installed package (an editable install points at REPO)."""
    code = "import bot, detection; print(bot.__file__); print(detection.__file__)"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    paths = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True,
                           check=True).stdout.split()
    if not all(Path(p).resolve().is_relative_to(tree.resolve()) for p in paths):
        raise SystemExit(f"the copy is not what gets imported ({paths}); is sesguard installed non-editable?")


def run(mutants: list[Mutant], timeout: float, baseline: bool) -> list[Outcome]:
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="sesguard-mutants-") as folder:
        tree = Path(folder) / "tree"
        shutil.copytree(REPO, tree, ignore=_ignore)
        _imports_from(tree)
        if baseline:  # a test that already fails would "kill" every mutant
            tests = tuple(dict.fromkeys(test for m in mutants for test in m.tests))
            print(f"baseline: {len(tests)} test files without any mutant …", flush=True)
            code, output = _pytest(tree, tests, timeout * 3)
            if code != 0:
                print(output[-3000:])
                raise SystemExit("the tests fail without any mutant: fix them first")
        for number, mutant in enumerate(mutants, 1):
            path = tree / mutant.path
            original = path.read_text()
            started = time.monotonic()
            try:
                path.write_text(mutated(mutant, tree))
                code, output = _pytest(tree, mutant.tests, timeout)
            finally:
                path.write_text(original)
            killed_by = "timeout" if code is None else None
            if code not in (0, None):
                failure = _FAILED.search(output)
                killed_by = failure[1] if failure else f"pytest exit {code}"
            outcome = Outcome(mutant, killed_by, time.monotonic() - started)
            outcomes.append(outcome)
            print(f"[{number}/{len(mutants)}] {mutant.name}: {outcome.verdict} ({outcome.seconds:.1f} s)", flush=True)
    return outcomes


def report(outcomes: list[Outcome]) -> str:
    width = max(len(o.mutant.name) for o in outcomes)
    lines = [f"{'mutant':<{width}}  result", f"{'-' * width}  {'-' * 6}"]
    lines += [f"{o.mutant.name:<{width}}  {o.verdict}" for o in outcomes]
    killed = sum(o.killed_by is not None for o in outcomes)
    equivalent = sum(bool(o.mutant.equivalent) for o in outcomes)
    survived = [o.mutant.name for o in outcomes if o.killed_by is None and not o.mutant.equivalent]
    lines += ["", f"score: {killed}/{len(outcomes)} killed, {equivalent} equivalent (noted), "
                  f"{len(survived)} survived" + (f": {', '.join(survived)}" if survived else "")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutants")
    parser.add_argument("--list", action="store_true", help="print the mutants and what each one breaks")
    parser.add_argument("--check", action="store_true", help="only check that every mutant applies to the source")
    parser.add_argument("--timeout", type=float, default=180, help="seconds a mutant's tests may take (default 180)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run without mutants first")
    args = parser.parse_args(argv)

    found = problems()
    if found or args.check:
        print("\n".join(found) or f"all {len(MUTANTS)} mutants apply to the source")
        return 1 if found else 0
    chosen = MUTANTS
    if args.only:
        unknown = sorted(set(args.only) - {m.name for m in MUTANTS})
        if unknown:
            parser.error(f"no such mutant: {', '.join(unknown)}")
        chosen = [m for m in MUTANTS if m.name in args.only]
    if args.list:
        for mutant in chosen:
            note = f"\n    equivalent: {mutant.equivalent}" if mutant.equivalent else ""
            print(f"{mutant.name} ({mutant.path}): {mutant.breaks}{note}")
        return 0
    outcomes = run(chosen, args.timeout, baseline=not args.no_baseline)
    print()
    print(report(outcomes))
    return 0 if all(o.as_expected for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
