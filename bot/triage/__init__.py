"""Triage of an alert: the state table, the state changes in the store, the buttons and the Suppress… modal."""
