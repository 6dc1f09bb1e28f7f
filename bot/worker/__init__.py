"""The worker process: the scheduler (`scheduler`) running each capability's jobs, process start-up
(`process`), and ingestion (`ingest`: poll, consume, backfill)."""
