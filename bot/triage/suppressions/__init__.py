"""Suppression hygiene (SPEC §8): the author is reminded a day before a suppression expires, and may extend it."""
