"""Tip handling around the tip flow: facts from the NLU, forwarding (stream, webhook), API, feed, wiring."""
