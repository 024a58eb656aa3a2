"""What the builder process runs: the consume loop, window rebuild, training thread, lease."""
