"""Containment through IAM (SPEC §6 "Contain"): one module per action, each with its confirmation text.

Each action module (`access_key`, `role_sessions`) has the same shape: `KEY` and `HISTORY` (its name and
the history lines of its outcomes), `applies(signal)` (the kind of identity it is for), `target(signal)`
(the IAM names it would act on, checked by `names`: `names.Refused` otherwise), `confirmation(target)`
(what the dialog says will change) and `contain(target, iam, now)` (the IAM calls, and an `Outcome`).
Nothing here knows Slack: the buttons, the clicks and the thread lines are `bot.slack.respond`'s. The IAM
client is the signal's account's (`access`).
"""
