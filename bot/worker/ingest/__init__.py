"""Ingestion: polling CloudTrail (`poll`), consuming the queue (`consume`), the backfill (`backfill`)."""
