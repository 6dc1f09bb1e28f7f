"""The worker: polling CloudTrail (`poll`), the scheduler (`scheduler`), leases, the alert outbox
(`notifier`), and the health report (`health`, with delivery to Slack in `delivery`)."""
