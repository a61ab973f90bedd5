"""Benchmarks of the bot: `python -m bench NAME` (see README.md)."""
