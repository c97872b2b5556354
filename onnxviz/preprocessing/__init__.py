"""Per-model facts as data (``meta.ModelMeta``), how photos become model inputs (``images``), and how
those facts are found for a foreign file: the conventions real files use (``candidates``), priors from
the producer, architecture and task (``priors``), normalization nodes in the graph, statistical
evidence on the bundled labelled photos (``evidence``, ``photos``) and the one score that combines
them (``infer``)."""
