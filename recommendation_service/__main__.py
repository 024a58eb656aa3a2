"""``python -m recommendation_service`` runs the ``recsvc`` command."""

from .cli import main

main(prog_name="recsvc")
