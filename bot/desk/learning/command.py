"""`/sesguard learned [account]`: the learning report again (an account), or which accounts have one."""

from __future__ import annotations

import re
from datetime import timedelta

import sqlalchemy as sa
from slack_bolt import BoltContext
from sqlmodel import col, select

from bot.desk.learning.blocks import ended_or_ends, report_lines
from bot.slack.blocks import text, when
from detection.store import LearnedIdentity, Scope, utcnow

ACCOUNT = re.compile(r"^\d{12}$")
ACCOUNTS_SHOWN = 100
USAGE = "Usage: `/sesguard learned [account]` (a 12-digit AWS account ID)"


def answer(context: BoltContext, args: list[str]) -> list[str]:
    store, settings = context["store"], context["settings"]
    learning = timedelta(days=settings.learning_days)
    if len(args) > 1 or (args and not ACCOUNT.match(args[0])):
        return [USAGE]
    with store.session() as session:
        if not args:
            counts = session.exec(select(LearnedIdentity.account_id, sa.func.count()).group_by(
                LearnedIdentity.account_id).order_by(LearnedIdentity.account_id).limit(ACCOUNTS_SHOWN)).all()
            scopes = {s.account_id: s.observed_since for s in session.exec(
                select(Scope).where(col(Scope.account_id).in_([account for account, _ in counts])))}
            if not counts:
                return ["Nothing was learned silently in any account yet."]
            now = utcnow()
            ends = {account: since + learning for account, since in scopes.items()}
            return ["*Learned silently* (`/sesguard learned &lt;account&gt;` shows one):"] + [
                f"• {text(account, 20)}: {count} identities; learning {ended_or_ends(ends.get(account), now)} "
                f"{when(ends[account]) if account in ends else '-'}" for account, count in counts]
        learned = list(session.exec(select(LearnedIdentity).where(LearnedIdentity.account_id == args[0])).all())
        scope = session.get(Scope, args[0])
    if not learned:
        return [f"Nothing was learned silently in account {text(args[0], 20)}."]
    observed = scope.observed_since if scope else None
    return [f"*Learned silently in AWS account {text(args[0], 20)}*"] + report_lines(
        args[0], learned, observed, observed + learning if observed else None)
