"""Refits: the training thread that fits and publishes versions, and its retry bookkeeping for
writes."""
