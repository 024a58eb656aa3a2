"""Plumbing every process uses: atomic file writes and version names, the id tables of the
model files, background threads and stop flags, and reading whole Kafka topics."""
