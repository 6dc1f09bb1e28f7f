"""`GET /metrics` from a running `sesguard serve` and a running `sesguard worker` (SESGUARD_METRICS_PORT), against
the CloudTrail and Slack stand-ins, scraped over HTTP and read with Prometheus's own parser (SPEC §11)."""

from __future__ import annotations

import json
import re

import pytest

from detection.sources.lookup import EVENT_SOURCES
from tests.support.local_aws import ses_calls, user
from tests.support.metrics import SESGUARD_WORDS, scrape
from tests.support.sesguard_processes import Running, deployed, wait_for
from tests.support.slack_harness import migrated_sqlite

pytestmark = pytest.mark.processes

THROTTLED = {"throttle", "ThrottlingException"}  # a fault the test queued, or the stand-in's own 2-a-second limit


def metrics_port(worker: Running) -> int:
    """The port the worker's metrics server bound (SESGUARD_METRICS_PORT=0: any free one), from its JSON log."""
    for line in worker.output().splitlines():
        message = json.loads(line)["message"]
        if found := re.fullmatch(r"metrics on http://[^:]+:(\d+)/metrics", message):
            return int(found[1])
    raise LookupError("no metrics line yet")


def test_serve_and_the_worker_answer_what_happened_each_its_own_requests_the_store_alike(aws, tmp_path):
    aws.api.add_events(*ses_calls(user("alice"), 2, days_ago=12))  # the backfill learns it
    # the first pass's first SES request and its three retries: that read fails
    aws.api.inject("error500", times=4, event_source=EVENT_SOURCES[0])
    aws.api.inject("throttle")  # the next pass's first request is throttled, then retried
    with deployed(aws, tmp_path, migrated_sqlite(tmp_path)) as deployment:
        worker = deployment.worker(SESGUARD_METRICS_PORT="0", SESGUARD_LOG_FORMAT="json", SESGUARD_POLL_SECONDS="4",
                                   SESGUARD_AUTO_INVESTIGATE="off")
        served = deployment.serve()
        wait_for(deployment.watermark, "the backfill", [worker])
        aws.api.add_events(*ses_calls(user("mallory"), 1))  # new after the learning period: one alert
        # posted, and its message's ts recorded in the store (the post reaches the channel a moment before)
        wait_for(lambda: [row.slack_ts is not None for row in deployment.signals()] == [True],
                 "the alert posted and recorded", [worker])
        ports: list[int] = []

        def bound() -> bool:
            try:
                ports.append(metrics_port(worker))
            except LookupError:
                return False
            return True

        wait_for(bound, "the worker's metrics line", [worker])
        from_worker = f"http://127.0.0.1:{ports[0]}/metrics"
        # The worker's own counters against what crossed the wire, between two passes (each starts 4 s after the last).
        scraped = {}

        def caught_up() -> bool:
            scraped["worker"] = scrape(from_worker)
            lookups = aws.api.lookups()
            return (scraped["worker"].value("sesguard_lookup_events_requests_total") == len(lookups)
                    and scraped["worker"].value("sesguard_lookup_events_throttled_total")
                    == sum(r.error in THROTTLED for r in lookups))

        wait_for(caught_up, "the worker's LookupEvents counters to match the stand-in's requests", [worker])
        from_serve = scrape(f"{served.base}/metrics")
        outputs = [worker.output(), served.running.output()]

    on_worker = scraped["worker"]
    assert on_worker.value("sesguard_lookup_events_throttled_total") >= 1
    # the first pass's failed read at least (a loaded machine may add one, such as a store busy for too long)
    assert on_worker.value("sesguard_poll_failures_total", source="lookup") >= 1
    # The store's figures are the same from either process, whichever did the work.
    for scraped_from in (on_worker, from_serve):
        assert scraped_from.value("sesguard_alerts_posted_total") == 1
        assert scraped_from.total("sesguard_signals") == 1 and scraped_from.total("sesguard_signals", status="new") == 1
        assert scraped_from.value("sesguard_alerts_waiting") == 0
        assert scraped_from.value("sesguard_poll_places", source="lookup") == 1
        assert scraped_from.value("sesguard_poll_failing_places", source="lookup") == 0
        assert scraped_from.value("sesguard_store_up") == 1
        assert scraped_from.label_values("le") <= SESGUARD_WORDS | {"lookup"}
        assert "111111111111" not in scraped_from.text and "mallory" not in scraped_from.text
    # serve sent no LookupEvents request and polls nothing: its own counters say so
    assert from_serve.value("sesguard_lookup_events_requests_total") == 0
    assert "sesguard_poll_failures_total" not in from_serve.samples
    # the worker's log, JSON throughout: every line one object
    assert all(set(json.loads(line)) == {"time", "level", "logger", "message", "fields"}
               for line in outputs[0].splitlines())
