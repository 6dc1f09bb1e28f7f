"""CloudTrail misbehaving under a real `sesguard worker`, watched through a real `sesguard serve` (SPEC §3).

Throttling is backed off and retried within the pass. For each lasting fault — expired credentials, an
unreachable endpoint, a malformed answer (after a good first page) — new events arrive while it
lasts; the worker backs off, keeps its watermark (nothing it has not stored is passed over), `/healthz`
turns 503 and `/sesguard status` shows the error; when CloudTrail recovers, every event is stored once
and every new identity is alerted once.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import pytest

from detection.sources.lookup import EVENT_SOURCES
from detection.store import EventRow
from tests.support.cuttable_link import CuttableLink
from tests.support.local_aws import ses_calls, user
from tests.support.sesguard_processes import leaked_secrets, wait_for
from tests.support.slack_signing import get

pytestmark = [pytest.mark.processes, pytest.mark.slow]

LOOKUP_PAGE = 50


def stored_event_ids(deployment) -> set[str]:
    return {row.event_id for row in deployment.rows(EventRow)}


def clear_faults(api) -> None:
    with api._lock:  # the stand-in takes faults under this lock
        api.faults.clear()


@contextmanager
def between_two_passes(api, worker):
    """The worker held at the start of its next pass: its first requests (each event source's first page, read
    side by side) wait in the stand-in until the block ends, then meet what it changed (a fault, new events)
    as requests arriving then would. The pass before has finished, so the change meets one whole pass, never
    the tail of one already under way."""
    held = [api.inject("hold", event_source=source, first_page=True) for source in EVENT_SOURCES]
    try:
        wait_for(held[0].reached.is_set, "the worker's next pass", [worker])
        yield
    finally:
        for hold in held:
            hold.release.set()


def throttling_is_backed_off_and_retried_within_the_pass(deployment, worker) -> None:
    api = deployment.aws.api
    api.inject("throttle", times=3, event_source=EVENT_SOURCES[0])
    api.add_events(*ses_calls(user("bob"), 2))
    wait_for(lambda: any(row.identity.endswith("bob") and row.slack_ts for row in deployment.signals()),
             "bob's alert", [worker])
    # that event source's requests (the other is read side by side)
    lookups = [r for r in api.lookups() if r.event_source == EVENT_SOURCES[0]]
    throttled = [i for i, request in enumerate(lookups) if request.error == "throttle"]
    assert len(throttled) == 3 and throttled == list(range(throttled[0], throttled[0] + 3))
    gaps = [lookups[i + 1].at - lookups[i].at for i in throttled]
    # Exponential back-off with jitter: at least half of 0.5 s, 1 s, 2 s (as the stand-in saw them arrive;
    # the worker runs with the default SESGUARD_RETRY_SECONDS, the deployment's others with a short one).
    assert [gap >= 0.25 * 2 ** n for n, gap in enumerate(gaps)] == [True] * 3, gaps
    assert deployment.poll_state().consecutive_failures == 0  # retried within the pass: no failure


def test_each_cloudtrail_fault_keeps_the_watermark_shows_in_status_and_loses_nothing(deployment):
    api = deployment.aws.api
    host, port = deployment.aws.url.rsplit("/", 1)[-1].split(":")
    with CuttableLink(host, int(port)) as link:
        api.add_events(*ses_calls(user("alice"), 3, days_ago=12))
        # The back-off is this test's subject: the default pause, not the deployment's short one.
        worker = deployment.worker(AWS_ENDPOINT_URL_CLOUDTRAIL=f"http://127.0.0.1:{link.port}",
                                   SESGUARD_RETRY_SECONDS=None)
        served = deployment.serve()
        wait_for(deployment.watermark, "the backfill", [worker])
        throttling_is_backed_off_and_retried_within_the_pass(deployment, worker)

        faults = {  # fault → (how it starts, what the error says, whose calls arrive meanwhile, how many)
            "expired credentials": (lambda: api.inject("expired", times=1000), "ExpiredTokenException", "mallory", 2),
            "unreachable endpoint": (link.cut, "Could not connect", "oscar", 2),
            "malformed answer after a good page": (lambda: api.inject("malformed", times=1000, first_page=False),
                                                   "MalformedAnswer", "peggy", LOOKUP_PAGE + 1),
        }
        for name, (start_fault, error, identity, count) in faults.items():
            calls = ses_calls(user(identity), count)
            with between_two_passes(api, worker):
                watermark = deployment.watermark()
                start_fault()
                api.add_events(*calls)
            started = time.monotonic()  # the held pass goes on: it meets the fault from its first request
            # Red once no poll has succeeded for three intervals: as the pass backs off and retries, often
            # before it gives up and records the error; status names the error once it is recorded.
            wait_for(lambda: get(f"{served.base}/healthz").status == 503, f"/healthz failing ({name})", [worker])
            red_after = time.monotonic() - started
            wait_for(lambda error=error: error in (deployment.poll_state().last_error or ""),
                     f"the error recorded ({name})", [worker])
            assert get(f"{served.base}/healthz").status == 503, name
            state = deployment.poll_state()
            assert state.consecutive_failures >= 1, (name, state.last_error)
            recorded_after = time.monotonic() - started
            print(f"{name}: /healthz 503 after {red_after:.1f} s, the error recorded after {recorded_after:.1f} s")
            assert deployment.watermark() == watermark, name
            assert not {c["eventID"] for c in calls} & stored_event_ids(deployment), name
            assert all(not row.identity.endswith(identity) for row in deployment.signals()), name
            status = deployment.status(served, f"status-{identity}")
            assert "FAILING" in status and error in status, (name, status)

            clear_faults(api)
            link.restore()
            wait_for(lambda identity=identity: any(row.identity.endswith(identity) and row.slack_ts
                                                   for row in deployment.signals()),
                     f"{identity}'s alert after {name}", [worker])
            assert {c["eventID"] for c in calls} <= stored_event_ids(deployment), name
            assert deployment.watermark() > watermark, name
            wait_for(lambda: get(f"{served.base}/healthz").status == 200, f"/healthz recovered ({name})", [worker])
        assert worker.terminate() == 0

    rows = {row.identity.rsplit("/", 1)[-1]: row.event_count for row in deployment.signals()}
    assert rows == {"bob": 2, "mallory": 2, "oscar": 2, "peggy": LOOKUP_PAGE + 1}
    assert deployment.aws.api.busiest_window() <= 2
    deployment.assert_each_alert_once()
    assert leaked_secrets(*deployment.outputs()) == {}
