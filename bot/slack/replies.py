"""Who clicked, where, and the ephemeral note they get: one home for what every listener needs of a payload."""

from __future__ import annotations

from slack_sdk import WebClient


def user_of(body: dict) -> str | None:
    return (body.get("user") or {}).get("id") or body.get("user_id")


def channel_of(body: dict) -> str | None:
    return (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")


def tell(client: WebClient, body: dict, text: str, channel: str | None = None) -> None:
    """An ephemeral note to whoever clicked, where they clicked (or in `channel`)."""
    channel = channel or channel_of(body)
    user = user_of(body)
    if channel and user:
        client.chat_postEphemeral(channel=channel, user=user, text=text)
