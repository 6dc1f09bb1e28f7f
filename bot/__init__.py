"""sesguard's application: settings, the Slack app, the notifier, the worker and the command line."""
