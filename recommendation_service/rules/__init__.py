"""Which items a request may receive: the request's filters over the catalog, and the small
expression language of named rules."""
