"""What the builder reports: its status and metrics, Kafka health, live quality, attribution and
its recent history."""
