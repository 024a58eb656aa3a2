"""Brokers, synthetic data and producers for the demo, tests and laptops."""
