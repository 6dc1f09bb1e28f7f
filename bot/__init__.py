"""sesguard's application, one package per capability (`alerts`, `triage`, `contact`, `investigate`, `contain`,
`page`, `desk`, `health`), the shared machinery (`config`, `store`), Slack's plumbing (`slack`), the worker
(`worker`) and the command line (`cli`)."""

__version__ = "0.2.0"
