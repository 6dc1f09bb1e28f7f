"""Who clicked, where, and the ephemeral note they get: one home for what every listener needs of a payload."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)

# Slack shows an ephemeral message only to a member of a channel the bot is in; for anyone else the note
# cannot be shown at all (e.g. a click forged into someone else's DM), which must not fail the listener.
UNDELIVERABLE = {"user_not_in_channel", "not_in_channel", "channel_not_found"}


def user_of(body: dict) -> str | None:
    return (body.get("user") or {}).get("id") or body.get("user_id")


def actor_of(body: dict) -> str:
    """Who clicked or submitted: every interaction payload names its user; one that does not is refused."""
    user = user_of(body)
    if not user:
        raise ValueError("a Slack interaction without a user")
    return user


def channel_of(body: dict) -> str | None:
    return (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")


def tell(client: WebClient, body: dict, text: str, channel: str | None = None) -> None:
    """An ephemeral note to whoever clicked, where they clicked (or in `channel`)."""
    channel = channel or channel_of(body)
    user = user_of(body)
    if not (channel and user):
        return
    try:
        client.chat_postEphemeral(channel=channel, user=user, text=text)
    except SlackApiError as exc:
        if exc.response.get("error") not in UNDELIVERABLE:
            raise
        log.info("could not tell %s in %s (%s): %s", user, channel, exc.response.get("error"), text[:200])
