"""The worker: polling CloudTrail (`poll`), the scheduler (`scheduler`), leases, health and the alert outbox
(`notifier`)."""
