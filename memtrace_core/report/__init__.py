"""Offline reports of a capture: table, tree, flame graph, and exports (folded stacks,
speedscope, pprof). Each module renders one output from a `profile.Profile`."""
