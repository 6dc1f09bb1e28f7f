"""The learning report (SPEC §8): what an account's learning period learned silently, shown once it ends."""
