"""Containment through IAM (SPEC §6 "Contain"): one module per action, each with its confirmation text.

Nothing here knows Slack: the buttons and their thread lines are `bot.slack.respond`'s. Every value an
action sends to IAM comes from CloudTrail and is checked against AWS's documented patterns first
(`bot.respond.names`); the IAM client is the signal's account's (`bot.respond.access`).
"""
