"""`app_home_opened`: the Home tab of whoever opened it, a triager's desk or a person's own questions.

The buttons on the tab are the alert's and the DM's own action IDs, so their listeners (triage, contact,
respond, investigate) handle them: nothing is registered for them here.
"""

from __future__ import annotations

import logging
import re

from slack_bolt import App, BoltContext
from slack_sdk import WebClient

from bot.desk.home import refresh

log = logging.getLogger(__name__)

USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")


def register(app: App) -> None:
    app.event("app_home_opened")(home_opened)


def home_opened(event: dict, client: WebClient, context: BoltContext) -> None:
    """Slack sends this for the Messages tab too (`tab: messages`): only the Home tab is published."""
    user = event.get("user")
    if event.get("tab") != "home":
        return
    if not isinstance(user, str) or not USER_ID.match(user):
        log.info("app_home_opened without a user ID; ignored")
        return
    refresh.opened(context["store"], context["settings"], client, user, context["triagers"])
