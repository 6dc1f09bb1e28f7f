"""The Slack app: the Bolt app (`app`), its HTTP face (`web`), middleware, the Web API client, and one room
per capability (`alert`, `triage`, `contact`, `commands`), each with its Block Kit and its listeners."""
