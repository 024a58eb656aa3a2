"""What the stream carries and what the builder keeps of it: events and their parsing, the
sliding window of the latest events, and the item catalog."""
