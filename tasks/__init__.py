"""In-tree task plugins, one module per family, registered through entry points."""
