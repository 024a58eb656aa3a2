"""The model and its on-disk format, shared by the builder and the servers."""
