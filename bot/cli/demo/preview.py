"""A message's Block Kit as a person sees it: as text for a terminal, and as a Block Kit Builder link."""

from __future__ import annotations

import html
import json
import re
from urllib.parse import quote

from bot.printable import printable

BUILDER = "https://app.slack.com/block-kit-builder/#"
_BOLD = re.compile(r"\*([^*\n]+)\*")
# The emoji codes sesguard's own messages use, as Slack draws them; any other code stays as written.
EMOJI = {":rotating_light:": "🚨", ":red_circle:": "🔴", ":large_orange_circle:": "🟠", ":large_yellow_circle:": "🟡",
         ":arrow_up:": "⬆️", ":white_check_mark:": "✅", ":mute:": "🔇", ":speech_balloon:": "💬", ":warning:": "⚠️",
         ":hourglass:": "⌛"}
_EMOJI_CODE = re.compile(r":[a-z0-9_+-]+:")


def builder_url(blocks: list[dict]) -> str:
    """Slack's Block Kit Builder, opened on this message: the payload JSON, URL-encoded, after the `#`."""
    return BUILDER + quote(json.dumps({"blocks": blocks}, ensure_ascii=False, separators=(",", ":")), safe="")


def _shown(mrkdwn: str) -> str:
    """mrkdwn as Slack displays it: `*bold*` without its stars, `&lt;` as `<`; still no terminal escapes."""
    drawn = _EMOJI_CODE.sub(lambda code: EMOJI.get(code.group(0), code.group(0)), _BOLD.sub(r"\1", mrkdwn))
    return "\n".join(printable(line) for line in html.unescape(drawn).split("\n"))


def _text(part: dict | None) -> str:
    return _shown(str((part or {}).get("text", "")))


def readable(blocks: list[dict]) -> str:
    """Header, sections, two-column fields, context lines and `[ buttons ]`, one after the other."""
    out: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            out.append(_text(block.get("text")))
        elif kind == "section":
            if block.get("text"):
                out.append(_text(block["text"]))
            fields = [_text(field).split("\n", 1) for field in block.get("fields", [])]
            for label, *value in fields:
                out.append(f"{label + ':':<22} {value[0] if value else ''}".rstrip())
        elif kind == "context":
            out.append("  ".join(_text(element) for element in block.get("elements", [])))
        elif kind == "divider":
            out.append("─" * 40)
        elif kind == "actions":
            out.append("  ".join(f"[ {_text(element.get('text'))} ]" for element in block.get("elements", [])))
        out.append("")
    return "\n".join(out).rstrip()
