"""Block Kit's limits as Slack enforces them, for the Slack stand-in: one rule, one small function.

Slack refuses a message or a view that breaks any of these with `invalid_blocks` (a top-level `text`
over 40,000 characters with `msg_too_long`); nothing is shown. Each rule cites the page of Slack's
reference that states it:

- blocks: https://docs.slack.dev/reference/block-kit/blocks (one page per block type)
- elements: https://docs.slack.dev/reference/block-kit/block-elements
- composition objects: https://docs.slack.dev/reference/block-kit/composition-objects
- surfaces: https://docs.slack.dev/surfaces/messages and https://docs.slack.dev/reference/views

`message_problems(...)` and `view_problems(...)` answer what Slack would refuse (empty: it accepts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Problems = list[str]


def _over(what: str, value: Any, limit: int) -> Problems:
    text = "" if value is None else str(value)
    return [f"{what}: {len(text)} characters > {limit}"] if len(text) > limit else []


# ── composition objects ──────────────────────────────────────────────────────────────────────────────


def text_object(obj: Any, where: str, limit: int = 3000) -> Problems:
    """Text object: `type` plain_text or mrkdwn, `text` of 1 to 3000 characters (less where the field
    that holds it says so); `emoji` only on plain_text, `verbatim` only on mrkdwn."""
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        return [f"{where}: not a text object"]
    problems = []
    if not obj.get("text"):
        problems.append(f"{where}: empty text")
    problems += _over(where, obj.get("text"), limit)
    if obj["type"] == "mrkdwn" and "emoji" in obj:
        problems.append(f"{where}: emoji is only for plain_text")
    if obj["type"] == "plain_text" and "verbatim" in obj:
        problems.append(f"{where}: verbatim is only for mrkdwn")
    return problems


def plain_text(obj: Any, where: str, limit: int) -> Problems:
    """Fields that take "a plain_text only text object" (headers, buttons, labels, titles, options)."""
    if isinstance(obj, dict) and obj.get("type") != "plain_text":
        return [f"{where}: must be plain_text"]
    return text_object(obj, where, limit)


def option(obj: Any, where: str) -> Problems:
    """Option object: text ≤ 75 characters, value ≤ 150, description ≤ 75."""
    if not isinstance(obj, dict):
        return [f"{where}: not an option"]
    return (text_object(obj.get("text"), f"{where} text", 75) + _over(f"{where} value", obj.get("value"), 150)
            + (text_object(obj["description"], f"{where} description", 75) if "description" in obj else []))


# ── block elements ───────────────────────────────────────────────────────────────────────────────────


def action_id(element: dict, where: str) -> Problems:
    """Every interactive element: action_id ≤ 255 characters."""
    return _over(f"{where} action_id", element.get("action_id"), 255)


def button(element: dict, where: str) -> Problems:
    """Button: plain_text text ≤ 75 characters, value ≤ 2000, url ≤ 3000, style primary or danger."""
    problems = plain_text(element.get("text"), f"{where} text", 75)
    problems += _over(f"{where} value", element.get("value"), 2000) + _over(f"{where} url", element.get("url"), 3000)
    if element.get("style") not in (None, "primary", "danger"):
        problems.append(f"{where}: style {element.get('style')!r}")
    return problems


def placeholder(element: dict, where: str) -> Problems:
    """Inputs and selects: placeholder is plain_text of at most 150 characters."""
    return plain_text(element["placeholder"], f"{where} placeholder", 150) if "placeholder" in element else []


def choices(element: dict, where: str, most: int) -> Problems:
    """Radio buttons and checkboxes: 1 to 10 options; static selects: up to 100."""
    options = element.get("options") or []
    problems = [f"{where}: {len(options)} options, 1 to {most} allowed"] if not 1 <= len(options) <= most else []
    for n, item in enumerate(options):
        problems += option(item, f"{where} option {n}")
    return problems


def plain_text_input(element: dict, where: str) -> Problems:
    """Plain-text input: min_length 0 to 3000, max_length 1 to 3000, min ≤ max."""
    low, high = element.get("min_length", 0), element.get("max_length", 3000)
    return [f"{where}: length bounds {low}..{high}"] if not 0 <= low <= high <= 3000 or high < 1 else []


ELEMENT_RULES: dict[str, list[Callable[[dict, str], Problems]]] = {
    "button": [action_id, button],
    "radio_buttons": [action_id, lambda e, w: choices(e, w, 10)],
    "checkboxes": [action_id, lambda e, w: choices(e, w, 10)],
    "static_select": [action_id, placeholder, lambda e, w: choices(e, w, 100)],
    "users_select": [action_id, placeholder],
    "plain_text_input": [action_id, placeholder, plain_text_input],
}


def element_problems(element: Any, where: str) -> Problems:
    if not isinstance(element, dict) or element.get("type") not in ELEMENT_RULES:
        return [f"{where}: unknown element {element.get('type') if isinstance(element, dict) else element!r}"]
    return [problem for rule in ELEMENT_RULES[element["type"]] for problem in rule(element, where)]


# ── blocks ───────────────────────────────────────────────────────────────────────────────────────────


def block_id(block: dict, where: str) -> Problems:
    """Every block: block_id ≤ 255 characters."""
    return _over(f"{where} block_id", block.get("block_id"), 255)


def section(block: dict, where: str) -> Problems:
    """Section: text ≤ 3000 characters, or fields (at most 10, each ≤ 2000), at least one of the two."""
    fields = block.get("fields") or []
    problems = [] if "text" in block or fields else [f"{where}: a section needs text or fields"]
    if "text" in block:
        problems += text_object(block["text"], f"{where} text", 3000)
    if len(fields) > 10:
        problems.append(f"{where}: {len(fields)} fields > 10")
    for n, field in enumerate(fields):
        problems += text_object(field, f"{where} field {n}", 2000)
    if "accessory" in block:
        problems += element_problems(block["accessory"], f"{where} accessory")
    return problems


def header(block: dict, where: str) -> Problems:
    """Header: plain_text of at most 150 characters."""
    return plain_text(block.get("text"), f"{where} text", 150)


def context(block: dict, where: str) -> Problems:
    """Context: 1 to 10 elements, text objects or images."""
    elements = block.get("elements") or []
    problems = [f"{where}: {len(elements)} elements, 1 to 10 allowed"] if not 1 <= len(elements) <= 10 else []
    for n, element in enumerate(elements):
        if isinstance(element, dict) and element.get("type") != "image":
            problems += text_object(element, f"{where} element {n}")
    return problems


def actions(block: dict, where: str) -> Problems:
    """Actions: 1 to 25 interactive elements."""
    elements = block.get("elements") or []
    problems = [f"{where}: {len(elements)} elements, 1 to 25 allowed"] if not 1 <= len(elements) <= 25 else []
    for n, element in enumerate(elements):
        problems += element_problems(element, f"{where} element {n}")
    return problems


def input_block(block: dict, where: str) -> Problems:
    """Input: plain_text label ≤ 2000 characters, hint ≤ 2000, one element."""
    problems = plain_text(block.get("label"), f"{where} label", 2000)
    if "hint" in block:
        problems += plain_text(block["hint"], f"{where} hint", 2000)
    return problems + element_problems(block.get("element"), f"{where} element")


def divider(block: dict, where: str) -> Problems:
    """Divider: nothing but its type (and block_id)."""
    extra = set(block) - {"type", "block_id"}
    return [f"{where}: a divider has no {sorted(extra)}"] if extra else []


BLOCK_RULES: dict[str, list[Callable[[dict, str], Problems]]] = {
    "section": [block_id, section],
    "header": [block_id, header],
    "context": [block_id, context],
    "actions": [block_id, actions],
    "input": [block_id, input_block],
    "divider": [block_id, divider],
}


def blocks_problems(blocks: Any, most: int, inputs_allowed: bool) -> Problems:
    """A blocks array: at most 50 blocks in a message, 100 in a modal or the Home tab."""
    if not isinstance(blocks, list):
        return ["blocks is not an array"]
    problems = [f"{len(blocks)} blocks > {most}"] if len(blocks) > most else []
    # "block_id … should be unique for each message or view" (every block's page)
    ids = [block.get("block_id") for block in blocks if isinstance(block, dict) and block.get("block_id")]
    problems += [f"block_id {i!r} used twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
    for n, block in enumerate(blocks):
        where = f"block {n}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in BLOCK_RULES or (kind == "input" and not inputs_allowed):
            problems.append(f"{where}: no {kind!r} block here")
            continue
        problems += [problem for rule in BLOCK_RULES[kind] for problem in rule(block, where)]
    return problems


# ── surfaces ─────────────────────────────────────────────────────────────────────────────────────────

MESSAGE_TEXT_LIMIT = 40_000  # chat.postMessage: longer `text` is refused with msg_too_long


def message_text(text: Any) -> Problems:
    """A message's top-level `text`: at most 40,000 characters (chat.postMessage, "Truncating content")."""
    return _over("text", text, MESSAGE_TEXT_LIMIT)


def message_problems(params: dict) -> Problems:
    """What Slack would refuse in a message (chat.postMessage, chat.update, chat.postEphemeral, a response URL)."""
    problems = message_text(params.get("text"))
    if params.get("blocks") not in (None, "", []):
        problems += blocks_problems(params["blocks"], 50, inputs_allowed=False)
    return problems


def view_problems(view: Any) -> Problems:
    """A modal view: title, submit and close plain_text ≤ 24 characters (submit required with inputs),
    callback_id and external_id ≤ 255, private_metadata ≤ 3000, at most 100 blocks."""
    if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
        return ["not a view"]
    problems = []
    if view["type"] == "modal":
        problems += plain_text(view.get("title"), "title", 24)
        for part in ("submit", "close"):
            if part in view:
                problems += plain_text(view[part], part, 24)
        if "submit" not in view and any(b.get("type") == "input" for b in _dicts(view.get("blocks"))):
            problems.append("a modal with inputs needs submit")
    problems += _over("callback_id", view.get("callback_id"), 255) + _over("external_id", view.get("external_id"), 255)
    problems += _over("private_metadata", view.get("private_metadata"), 3000)
    return problems + blocks_problems(view.get("blocks"), 100, inputs_allowed=True)


def _dicts(blocks: Any) -> Iterator[dict]:
    return (b for b in blocks if isinstance(b, dict)) if isinstance(blocks, list) else iter(())
