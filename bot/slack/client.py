"""The Slack Web API client every part of the bot uses, on `SLACK_API_URL`, with slack-sdk's retry handlers.

A `429` is always safe to retry: Slack did not carry the call out, and `Retry-After` says when to come
back. A `5xx` or a dropped connection is different: the call may have been carried out and only its
answer lost, so those are retried automatically only for calls that do the same thing twice
(reads, `chat.update`, `conversations.open`). Posting is retried by the notifier itself, after looking
in the channel for the message it may already have posted.
"""

from __future__ import annotations

import http.client
import socket
import urllib.error
from typing import Optional

from slack_sdk import WebClient
from slack_sdk.http_retry import RetryHandler
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot.settings import Settings

# Calls that would do their work twice when repeated after a lost answer.
NOT_REPEATABLE = ("chat.postMessage", "chat.postEphemeral", "views.open")
TRANSIENT_STATUSES = (500, 502, 503, 504)
# What an unreachable or dropping Slack raises (below slack-sdk's own SlackApiError).
CONNECTION_ERRORS = (urllib.error.URLError, OSError, http.client.HTTPException, socket.timeout)
TIMEOUT_SECONDS = 15


def _repeatable(request: HttpRequest) -> bool:
    method = request.url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    return method not in NOT_REPEATABLE


class RepeatableServerErrorRetryHandler(ServerErrorRetryHandler):
    def _can_retry(self, *, state: RetryState, request: HttpRequest, response: Optional[HttpResponse] = None,
                   error: Optional[Exception] = None) -> bool:
        return response is not None and response.status_code in TRANSIENT_STATUSES and _repeatable(request)


class RepeatableConnectionErrorRetryHandler(ConnectionErrorRetryHandler):
    def _can_retry(self, *, state: RetryState, request: HttpRequest, response: Optional[HttpResponse] = None,
                   error: Optional[Exception] = None) -> bool:
        return _repeatable(request) and super()._can_retry(state=state, request=request, response=response, error=error)


def retry_handlers() -> list[RetryHandler]:
    return [
        RateLimitErrorRetryHandler(max_retry_count=3),
        RepeatableServerErrorRetryHandler(max_retry_count=2),
        RepeatableConnectionErrorRetryHandler(max_retry_count=2),
    ]


def slack_client(settings: Settings, with_token: bool = True) -> WebClient:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token and with_token else None
    base_url = settings.slack_api_url if settings.slack_api_url.endswith("/") else settings.slack_api_url + "/"
    return WebClient(token=token, base_url=base_url, timeout=TIMEOUT_SECONDS, retry_handlers=retry_handlers())


def is_transient(error: BaseException) -> bool:
    """Slack unreachable, overloaded or rate limiting: try again later, the work is not done."""
    from slack_sdk.errors import SlackApiError

    if isinstance(error, SlackApiError):
        status = getattr(error.response, "status_code", 200)
        return status == 429 or status >= 500
    return isinstance(error, CONNECTION_ERRORS)
