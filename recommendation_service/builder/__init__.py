"""What the builder process runs: the consume loop (this package), fresh vectors (`fresh/`), refits
(`refits/`), one active builder (`lease/`) and what it reports (`observability/`)."""
