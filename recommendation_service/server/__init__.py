"""What a server process runs: the Flask app, its blueprints, the served model watcher."""
