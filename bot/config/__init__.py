"""Configuration written once: the settings model (`settings`; `scan_settings`, its detection part with `sesguard
scan`'s flags over it), how every process starts (`startup`), errors, logging, business hours."""
