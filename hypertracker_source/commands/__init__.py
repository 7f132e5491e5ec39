"""The `hypertracker` command line: one module per command."""
