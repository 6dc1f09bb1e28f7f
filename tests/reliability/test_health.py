"""Health that cannot lie, against real `sesguard serve` and `sesguard worker` processes (SPEC §3).

- A worker killed with SIGKILL records nothing, yet `/healthz` turns 503 once the last successful poll is
  three poll intervals old, and `/sesguard status` names when that was.
- A deployment whose worker never comes turns red three intervals after `serve` first looked; a worker
  whose first backfill outlasts three intervals stays green while it works, and turns red once it dies.
- Slack refusing every post with `token_revoked` turns `/healthz` 503 at the first refused post.
- `/healthz` answers anyone: status and counts only; the account IDs, role ARNs, the bot's own IAM user
  and AWS's error text stay in `/sesguard status`, for triagers.

The poll interval is 0.3 s (three intervals: 0.9 s). Every `/healthz` answer is checked against the
moment it was computed (its `checked_at`), so no assertion depends on when the test happened to ask.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.support.local_aws import OWN_ACCOUNT, ROLE_ACCOUNT, ROLE_ARN, now, ses_calls, user
from tests.support.sesguard_processes import CHANNEL, leaked_secrets, wait_for
from tests.support.slack_signing import Reply, get

pytestmark = [pytest.mark.processes, pytest.mark.slow]

PATIENCE = timedelta(seconds=0.9)  # three poll intervals of 0.3 s
# How late the first 503 may come after the moment it became due: the test asks every 50 ms.
MARGIN = timedelta(seconds=1)


def checked_at(reply: Reply) -> datetime:
    return datetime.fromisoformat(reply.json()["checked_at"])


def healthz_until(served, condition, what: str, processes=()) -> list[Reply]:
    """Every /healthz answer until `condition(answer)` holds (the last one)."""
    answers: list[Reply] = []

    def asked() -> bool:
        answers.append(get(f"{served.base}/healthz"))
        return condition(answers[-1])

    wait_for(asked, what, processes)
    return answers


def test_a_sigkilled_worker_turns_healthz_503_three_intervals_after_its_last_poll(deployment):
    deployment.aws.api.add_events(*ses_calls(user("alice"), 3, days_ago=12))
    worker = deployment.worker()
    served = deployment.serve()
    wait_for(deployment.watermark, "the backfill", [worker])
    healthz_until(served, lambda reply: reply.status == 200, "/healthz green while the worker polls", [worker])

    worker.kill()  # no handler runs: nothing records that polling stopped
    last_poll = deployment.poll_state().last_success_at  # final: nobody writes after the kill
    answers = healthz_until(served, lambda reply: reply.status == 503, "/healthz 503 after the kill")
    for reply in answers:  # green exactly while the last poll is at most three intervals old
        assert reply.status == (200 if checked_at(reply) - last_poll <= PATIENCE else 503), reply.json()
    first_red = checked_at(answers[-1]) - last_poll
    assert PATIENCE < first_red <= PATIENCE + MARGIN, first_red
    assert answers[-1].json()["failing_sources"] == 1 and answers[-1].json()["delivery_failing"] is False

    status = deployment.status(served, "after-the-kill")
    since = f"no successful poll since {last_poll:%Y-%m-%d %H:%M:%S}Z"
    assert f"FAILING {OWN_ACCOUNT}/us-east-1 (lookup): {since}" in status
    print(f"/healthz 503 {first_red.total_seconds():.2f} s after the last successful poll (due after 0.9 s)")
    assert leaked_secrets(*deployment.outputs()) == {}


def test_a_fresh_deployment_whose_worker_never_comes_turns_red_three_intervals_after_the_first_look(deployment):
    served = deployment.serve()  # no worker: nothing will ever poll
    answers = healthz_until(served, lambda reply: reply.status == 503, "/healthz 503 without a worker")
    waiting_since = deployment.poll_state("*", "*").waiting_since  # set by the first look
    for reply in answers:
        assert reply.status == (200 if checked_at(reply) - waiting_since <= PATIENCE else 503), reply.json()
    assert checked_at(answers[-1]) - waiting_since <= PATIENCE + MARGIN
    status = deployment.status(served, "no-worker")
    assert f"no poll has run yet, waiting since {waiting_since:%Y-%m-%d %H:%M:%S}Z" in status and "FAILING" in status


def test_a_first_backfill_outlasting_three_intervals_is_green_while_its_worker_works_red_once_it_dies(deployment):
    api = deployment.aws.api
    release = api.inject("hold").release  # the backfill's first request waits: a backfill that takes long
    try:
        worker = deployment.worker(SESGUARD_LEASE_SECONDS="8")  # the poll lease outlives the check below
        served = deployment.serve()
        wait_for(lambda: not api.faults, "the backfill's first request", [worker])
        waiting_since = deployment.poll_state().waiting_since
        wait_for(lambda: now() - waiting_since > PATIENCE + timedelta(seconds=0.3), "three intervals of backfill")
        reply = get(f"{served.base}/healthz")
        assert reply.status == 200 and checked_at(reply) - waiting_since > PATIENCE, reply.json()
        assert "first poll (backfill) under way" in deployment.status(served, "backfilling")

        worker.kill()  # mid-backfill: its poll lease lapses, and the wait counts against it
        answers = healthz_until(served, lambda answer: answer.status == 503, "/healthz 503 after the kill")
        assert answers[-1].json()["failing_sources"] == 1
    finally:
        release.set()


def test_a_revoked_token_turns_healthz_503_and_the_public_answer_names_nothing(deployment):
    api, slack = deployment.aws.api, deployment.slack
    api.add_events(*ses_calls(user("alice"), 3, days_ago=12))
    # A role that cannot be assumed: AWS's refusal names the role and the bot's own IAM user.
    worker = deployment.worker(SESGUARD_ROLE_ARNS=ROLE_ARN)
    served = deployment.serve(SESGUARD_ROLE_ARNS=ROLE_ARN)
    wait_for(deployment.watermark, "the backfill", [worker])
    slack.fail("chat.postMessage", "token_revoked", times=1_000_000)
    api.add_events(*ses_calls(user("mallory"), 2))
    answers = healthz_until(served, lambda reply: reply.json().get("delivery_failing") is True,
                            "/healthz: delivery failing", [worker])
    assert answers[-1].status == 503 and answers[-1].json()["pending_alerts"] == 1
    [refused, *_] = [call for call in slack.calls if call.fault == "token_revoked"]
    after_refusal = checked_at(answers[-1]).timestamp() - refused.at
    assert after_refusal <= 3 * 0.3 + MARGIN.total_seconds(), after_refusal

    status = deployment.status(served, "token-revoked")
    bot_user = f"arn:aws:iam::{OWN_ACCOUNT}:user/sesguard"
    distinctive = [OWN_ACCOUNT, ROLE_ACCOUNT, ROLE_ARN, bot_user, "AccessDenied", "not authorized", "token_revoked"]
    for value in distinctive:
        assert value in status, value  # triagers see it all
    public = b"".join(get(f"{served.base}/healthz").body for _ in range(2)).decode() + "".join(
        reply.body.decode() for reply in answers)
    assert [value for value in distinctive + ["arn:", CHANNEL] if value in public] == []
    print(f"/healthz 503 {after_refusal:.2f} s after the first post refused with token_revoked")
    assert worker.terminate() == 0
    assert leaked_secrets(*deployment.outputs()) == {}
