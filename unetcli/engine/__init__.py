"""The engine: training, prediction and export loops. It never parses options; the CLI never touches tensors."""
