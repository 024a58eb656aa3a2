"""One active builder: the model directory's lock, the Kafka lease across hosts, and taking over."""
