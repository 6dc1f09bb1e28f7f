"""The triage desk (SPEC §8): the App Home (`home`), the learning report (`learning`), figures and the daily
digest (`digest`), suppression reminders (`reminders`)."""
