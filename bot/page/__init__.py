"""Page (SPEC §6 "Page"): the PagerDuty Events API client (`pagerduty`) and the pages outbox (`pager`)."""
