"""Shared store machinery of the application: the outbox claim (`outbox`) and the leases (`lease`)."""
