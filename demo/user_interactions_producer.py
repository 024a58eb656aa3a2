#!/usr/bin/env python3
"""Publish interactions of synthetic users with category tastes to ``interactions``.

    python demo/user_interactions_producer.py --users 200 --rate 200 --count 0

Each user favours one category (``--focus`` of their events), so the model visibly learns it.
The same command is ``recsvc user-interactions-producer``; ``--help`` lists every flag.
"""

from recommendation_service.sandbox.producers import user_interactions_producer

if __name__ == "__main__":
    user_interactions_producer()
