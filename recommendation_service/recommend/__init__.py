"""The request path: a served model version and the pipeline of named stages that turns a
request into a list (retrieve, score, explain, shape), plus the item-level queries (candidates,
predict, similar items, bought together). Only servers import it."""
