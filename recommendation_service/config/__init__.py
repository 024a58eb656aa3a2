"""Typed, frozen configuration objects, validated once where they are built.

The CLI parses options and ``RECSVC_*`` environment variables into these objects and passes
them down; nothing deeper in the package reads the environment. One module per process role,
so a server process never imports the builder's training settings (nor the reverse):

* :mod:`.checks` -- the validation helper and the settings both roles parse the same way.
* :mod:`.kafka` -- where the interactions live and how every client reaches the cluster.
* :mod:`.builder` -- :class:`~.builder.BuilderConfig`, what ``recsvc builder`` runs with.
* :mod:`.server` -- :class:`~.server.ServerConfig`, what ``recsvc serve`` runs with.
"""
