"""An empty program: the benchmark of start-up time."""
