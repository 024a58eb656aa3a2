"""Real-time recommendation service: Kafka events in, sliding-window ALS, Flask API out."""

__version__ = "0.1.0"
