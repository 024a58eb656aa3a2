"""A/B experiments: variants of the request-time settings, the assignment of users to them, the
rules file they live in, and the statistics that compare them."""
