#!/usr/bin/env python3
"""Publish a synthetic catalog (ids, categories, titles) to the ``items`` topic.

    python demo/item_producer.py --bootstrap-servers 127.0.0.1:9092 --items 400

The same command is ``recsvc item-producer``; ``--help`` lists every flag.
"""

from recommendation_service.sandbox.producers import item_producer

if __name__ == "__main__":
    item_producer()
