"""Layer discovery (which tensors are layers a person would pick, their layouts and readable names),
vision-transformer token layers, and receptive fields computed from the graph."""
