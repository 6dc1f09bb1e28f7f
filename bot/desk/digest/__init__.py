"""The triage figures (SPEC §8): `/sesguard stats [days]` and the daily digest."""
