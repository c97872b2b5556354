"""Per-model facts as data (``meta.ModelMeta``), how photos become model inputs (``images``), and how
those facts are found for a foreign file: normalization nodes in the graph, statistical evidence and
the inference that combines them (``infer``)."""
