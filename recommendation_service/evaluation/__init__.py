"""Replay evaluation of interaction logs (``recsvc evaluate``)."""
