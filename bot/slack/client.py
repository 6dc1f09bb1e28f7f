"""The Slack Web API client every part of the bot uses, on `SLACK_API_URL`, with slack-sdk's retry handlers.

A `429` is always safe to retry: Slack did not carry the call out, and `Retry-After` says when to come
back. A `5xx` or a dropped connection is different: the call may have been carried out and only its
answer lost, so those are retried automatically only for calls that do the same thing twice
(reads, `chat.update`, `conversations.open`). Posting is retried by the notifier itself, after looking
in the channel for the message it may already have posted.

The pauses are SESGUARD_RETRY_SECONDS': a 429 waits its `Retry-After` plus up to that much (processes limited
at once come back spread), a 5xx or a dropped connection that much, doubling, plus up to as much again.
`sleep` is the caller's to give (a test counts the waits instead of sitting through them).
"""

from __future__ import annotations

import http.client
import random
import socket
import time
import urllib.error
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.http_retry import RetryHandler
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.jitter import Jitter
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot.config.settings import Settings

# Calls that would do their work twice when repeated after a lost answer.
NOT_REPEATABLE = ("chat.postMessage", "chat.postEphemeral", "views.open")
TRANSIENT_STATUSES = (500, 502, 503, 504)
# What an unreachable or dropping Slack raises (below slack-sdk's own SlackApiError).
CONNECTION_ERRORS = (urllib.error.URLError, OSError, http.client.HTTPException, socket.timeout)
TIMEOUT_SECONDS = 15
# A Retry-After beyond this is taken as this: a Slack-compatible endpoint's nonsense must not park a worker for days.
MAX_RETRY_AFTER_SECONDS = 120.0


def _repeatable(request: HttpRequest) -> bool:
    method = request.url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    return method not in NOT_REPEATABLE


class _Spread(Jitter):
    """Up to `spread` seconds more than the pause (slack-sdk's own adds up to a second, whatever the pause)."""

    def __init__(self, spread: float):
        self.spread = spread

    def recalculate(self, duration: float) -> float:
        return duration + random.uniform(0, self.spread)


class _PausesThroughSleep(RetryHandler):
    """The pause between attempts through the handler's own `sleep` (slack-sdk calls time.sleep itself)."""

    sleep: Callable[[float], None]

    def __init__(self, max_retry_count: int, pause: float, sleep: Callable[[float], None]):
        super().__init__(max_retry_count=max_retry_count,
                         interval_calculator=BackoffRetryIntervalCalculator(pause, _Spread(pause)))
        self.sleep = sleep

    def prepare_for_next_attempt(self, *, state: RetryState, request: HttpRequest,
                                 response: HttpResponse | None = None, error: Exception | None = None) -> None:
        state.next_attempt_requested = True
        self.sleep(self.interval_calculator.calculate_sleep_duration(state.current_attempt))
        state.increment_current_attempt()


class RepeatableServerErrorRetryHandler(_PausesThroughSleep, ServerErrorRetryHandler):
    def _can_retry(self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
                   error: Exception | None = None) -> bool:
        return response is not None and response.status_code in TRANSIENT_STATUSES and _repeatable(request)


class RepeatableConnectionErrorRetryHandler(_PausesThroughSleep, ConnectionErrorRetryHandler):
    def _can_retry(self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
                   error: Exception | None = None) -> bool:
        return _repeatable(request) and super()._can_retry(state=state, request=request, response=response, error=error)


class RetryAfterHandler(RateLimitErrorRetryHandler):
    """A 429 comes back after Slack's `Retry-After` (a second when it is missing or unreadable), plus up to
    `spread` seconds."""

    def __init__(self, max_retry_count: int, spread: float, sleep: Callable[[float], None]):
        super().__init__(max_retry_count=max_retry_count)
        self.spread, self.sleep = spread, sleep

    def prepare_for_next_attempt(self, *, state: RetryState, request: HttpRequest,
                                 response: HttpResponse | None = None, error: Exception | None = None) -> None:
        if response is None:
            raise error  # type: ignore[misc]
        state.next_attempt_requested = True
        self.sleep(retry_after(response) + random.uniform(0, self.spread))
        state.increment_current_attempt()


def retry_after(response: HttpResponse) -> float:
    """Seconds Slack asked us to wait: `Retry-After`, whole seconds as Slack sends them, within bounds."""
    values = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), None)
    value = values[0] if isinstance(values, list) and values else values
    try:
        seconds = float(str(value).strip())
    except ValueError:
        return 1.0
    return min(seconds, MAX_RETRY_AFTER_SECONDS) if seconds >= 0 else 1.0  # nan fails both comparisons: 1.0


def retry_handlers(pause: float = 0.5, sleep: Callable[[float], None] = time.sleep) -> list[RetryHandler]:
    return [
        RetryAfterHandler(max_retry_count=3, spread=pause, sleep=sleep),
        RepeatableServerErrorRetryHandler(max_retry_count=2, pause=pause, sleep=sleep),
        RepeatableConnectionErrorRetryHandler(max_retry_count=2, pause=pause, sleep=sleep),
    ]


def slack_client(settings: Settings, with_token: bool = True, sleep: Callable[[float], None] = time.sleep) -> WebClient:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token and with_token else None
    base_url = settings.slack_api_url if settings.slack_api_url.endswith("/") else settings.slack_api_url + "/"
    return WebClient(token=token, base_url=base_url, timeout=TIMEOUT_SECONDS,
                     retry_handlers=retry_handlers(settings.retry_seconds, sleep))


def is_transient(error: BaseException) -> bool:
    """Slack unreachable, overloaded or rate limiting: try again later, the work is not done."""
    from slack_sdk.errors import SlackApiError

    if isinstance(error, SlackApiError):
        status = getattr(error.response, "status_code", 200)
        return status == 429 or status >= 500
    return isinstance(error, CONNECTION_ERRORS)
