"""Lookups asked once a while, whichever process asks: an answer kept an hour, a failure a few minutes."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import col

from bot.context.cache import ANSWER_KEPT, FAILURE_KEPT, LookupFailed, cached
from bot.context.tables import ContextLookup
from detection.store import Store, utcnow


def age_all(store: Store, by) -> None:
    with store.session() as session:
        session.execute(sa.update(ContextLookup).values(fetched_at=utcnow() - by))
        session.commit()


def test_an_answer_is_asked_once_an_hour(store):
    asked = []

    def fetch() -> dict:
        asked.append(1)
        return {"tags": len(asked)}

    assert cached(store, "iam:ListUserTags:111122223333:alice", fetch) == {"tags": 1}
    assert cached(Store(store.url), "iam:ListUserTags:111122223333:alice", fetch) == {"tags": 1}  # another process
    age_all(store, ANSWER_KEPT)
    assert cached(store, "iam:ListUserTags:111122223333:alice", fetch) == {"tags": 2}


def test_a_failure_is_kept_a_few_minutes_then_asked_again(store):
    answers: list = [LookupFailed("iam:ListUserTags denied: AccessDenied: no"), {"tags": {}}]

    def fetch() -> dict:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    for _ in range(2):
        try:
            cached(store, "k", fetch)
        except LookupFailed as exc:
            assert exc.reason == "iam:ListUserTags denied: AccessDenied: no"
        else:
            raise AssertionError("the failure was not kept")
    age_all(store, FAILURE_KEPT)
    assert cached(store, "k", fetch) == {"tags": {}} and answers == []
    with store.session() as session:
        assert session.exec(sa.select(sa.func.count()).where(col(ContextLookup.error).is_not(None))).one()[0] == 0
