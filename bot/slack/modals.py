"""Reading a submitted modal: its inputs, defensively, and the signal it is about."""

from __future__ import annotations

from bot.slack.ids import Field
from detection.store import SignalRow, Store


def submitted(view: dict, field: Field) -> dict:
    """The state of one input; {} when the payload lacks it or has it in another shape."""
    state = view.get("state") if isinstance(view, dict) else None
    values = state.get("values") if isinstance(state, dict) else None
    block = values.get(field.value) if isinstance(values, dict) else None
    element = block.get(field.value) if isinstance(block, dict) else None
    return element if isinstance(element, dict) else {}


def selected(view: dict, field: Field) -> str | None:
    option = submitted(view, field).get("selected_option")
    return option.get("value") if isinstance(option, dict) else None


def signal_of_modal(store: Store, view: dict) -> SignalRow | None:
    """The signal the modal is about, re-read by the ID in its private_metadata."""
    signal_id = str(view.get("private_metadata") or "") if isinstance(view, dict) else ""
    if not signal_id:
        return None
    with store.session() as session:
        return session.get(SignalRow, signal_id)
