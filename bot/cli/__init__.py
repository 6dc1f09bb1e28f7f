"""The command line (`commands`): scan, demo, investigate, poll, worker, serve; terminal output and progress."""
