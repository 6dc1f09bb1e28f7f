"""Containment from the alert (SPEC §6 "Contain"): its buttons with their confirmation dialogs, the clicks,
one attempt at a time, and the result in the alert's thread and the signal's history. The IAM side is
`bot.respond`'s."""
