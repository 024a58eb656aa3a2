"""Turning the window into a model: implicit ALS (and Spark's), the refit-time search of the
settings, the fold-in that gives fresh user vectors between refits, and items bought together."""
