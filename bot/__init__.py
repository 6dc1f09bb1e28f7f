"""sesguard's application: settings, the Slack app (`bot.slack`), the worker (`bot.worker`) and the command line."""

__version__ = "0.2.0"
