"""memtrace terminal UI (Textual): reads the model built by memtrace_core, never the wire format."""
