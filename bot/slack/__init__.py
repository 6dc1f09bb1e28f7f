"""Slack plumbing: the Bolt app (`app`, which registers each capability's listeners), its HTTP face (`web`),
middleware, the Web API client, the `/sesguard` command router (`commands`) and small shared Block Kit
builders. The capabilities' own messages and listeners live in their packages (`bot.alerts`, `bot.triage`, …)."""
