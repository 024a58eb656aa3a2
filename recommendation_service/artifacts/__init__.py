"""What the builder publishes and the servers read: versioned model directories, the control
files beside them, update files and updates-topic records of fresh vectors, and their copies in
S3-compatible object storage."""
