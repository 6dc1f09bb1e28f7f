"""The shape of the Slack payloads sesguard handles, checked once before Bolt dispatches them.

Bolt and the listeners read a payload as Slack documents it: `body["actions"][0]["action_id"]`,
`body["user"]["id"]`, `body["view"]["state"]["values"]`. A signed payload whose fields have other types
(a string for `user`, `"x"` or `[]` for `actions`) raised deep inside Bolt or a listener: a 500 and a
traceback. Checked here, it is refused with 400 instead, and nothing after this needs to doubt the shape.

Only what is read is described; every other field is ignored, as Slack adds fields over time
(https://api.slack.com/reference/interaction-payloads, https://api.slack.com/interactivity/slash-commands).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec


class User(msgspec.Struct):
    id: str


class Team(msgspec.Struct):
    id: str | None = None


class Channel(msgspec.Struct):
    id: str


class Container(msgspec.Struct):
    message_ts: str | None = None
    channel_id: str | None = None


class Message(msgspec.Struct):
    ts: str | None = None


class Action(msgspec.Struct):
    action_id: str
    block_id: str | None = None
    value: str | None = None


class State(msgspec.Struct):
    values: dict[str, dict[str, dict[str, Any]]] = {}


class View(msgspec.Struct):
    type: str
    callback_id: str
    private_metadata: str = ""
    state: State | None = None


class BlockActions(msgspec.Struct):
    user: User
    actions: Annotated[list[Action], msgspec.Meta(min_length=1)]
    trigger_id: str | None = None
    response_url: str | None = None
    team: Team | None = None
    channel: Channel | None = None
    container: Container | None = None
    message: Message | None = None
    view: View | None = None


class ViewSubmission(msgspec.Struct):  # and view_closed
    user: User
    view: View
    team: Team | None = None


class Event(msgspec.Struct):
    type: str


class EventCallback(msgspec.Struct):
    event: Event


class SlashCommand(msgspec.Struct):  # form fields are strings; a JSON body could hold anything
    command: str
    text: str = ""
    user_id: str = ""
    channel_id: str = ""
    response_url: str = ""
    trigger_id: str = ""


SHAPES: dict[str, type[msgspec.Struct]] = {
    "block_actions": BlockActions,
    "view_submission": ViewSubmission,
    "view_closed": ViewSubmission,
    "event_callback": EventCallback,
}
# Messages name the field (`$.actions[0]`), never its value; this keeps a line of the log a line.
PROBLEM_CHARACTERS = 200


def problem(body: Any) -> str | None:
    """What makes this payload unlike the ones Slack sends, for the kinds sesguard handles; None if nothing.

    A payload of another kind is left to Bolt, which answers 404 when no listener takes it.
    """
    if not isinstance(body, dict):
        return "not a JSON object"
    kind = body.get("type")
    shape = SlashCommand if "command" in body else SHAPES.get(kind) if isinstance(kind, str) else None
    if shape is None:
        return None
    try:
        msgspec.convert(body, shape)
    except msgspec.ValidationError as error:
        return str(error)[:PROBLEM_CHARACTERS]
    return None
