"""Contain (SPEC §6 "Contain"): deactivate the access key or revoke the role's sessions, from the alert.

IAM side — one module per action, each with its confirmation text. Each action module (`access_key`,
`role_sessions`) has the same shape: `KEY` and `HISTORY` (its name and the history lines of its outcomes),
`applies(signal)` (the kind of identity it is for), `target(signal)` (the IAM names it would act on, checked by
`names`: `names.Refused` otherwise), `confirmation(target)` (what the dialog says will change) and
`contain(target, iam, now)` (the IAM calls, and an `Outcome`). The IAM client is the signal's account's
(`access`).

Slack side — the buttons with their confirmation dialogs (`blocks`), the clicks (`listeners`), one attempt at
a time (`attempts`, `tables`), and the result in the alert's thread and the signal's history.
"""
