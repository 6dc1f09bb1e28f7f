"""The App Home (SPEC §8): the bot's Home tab as a triage desk, published with `views.publish`."""
