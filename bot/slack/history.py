"""The lost-answer look-up: whether a message sesguard meant to post is already in a conversation.

A post whose answer was lost (a timeout, a dropped connection) may or may not have reached Slack; before
posting again, the outboxes (alerts, learning reports, digests, reminders) look for it by the metadata
every such message carries.
"""

from __future__ import annotations

from datetime import datetime

from slack_sdk import WebClient


def find_by_metadata(client: WebClient, channel: str, oldest: datetime, event_type: str, key: str, value,
                     pages: int) -> str | None:
    """The ts of the first message (newest first) since `oldest` whose metadata is `event_type` with
    `event_payload[key] == value`; None when `pages` pages of history hold none."""
    cursor = None
    for _ in range(pages):
        page = client.conversations_history(channel=channel, oldest=f"{oldest.timestamp():.6f}",
                                            include_all_metadata=True, limit=200, cursor=cursor)
        messages: list[dict] = page.get("messages", [])
        for message in messages:
            meta = message.get("metadata") or {}
            if meta.get("event_type") == event_type and (meta.get("event_payload") or {}).get(key) == value:
                return message["ts"]
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not page.get("has_more") or not cursor:
            return None
    return None
