"""Triage context (SPEC §10): the key, the owner and the address of an alert, gathered after it is posted."""
