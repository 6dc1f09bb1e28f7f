"""Configuration written once: the settings model (`settings`, with `scan_settings` for `sesguard scan`), its
errors, logging, business hours."""
