"""Health (SPEC §3): each source place's last poll, lag and error, delivery to Slack and paging (`report`)."""
