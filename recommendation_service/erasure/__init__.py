"""Forgetting a user through Kafka: the erasures topic, following it, requesting an erasure.

What an erasure is, and the ledger every reader keeps, are data (``data/erasures.py``); the
builder applies erasures to its window (``builder/erasures.py``), servers to their answers
(``recommend/version.py``).
"""
