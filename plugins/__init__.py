"""In-tree architecture plugins, one module per family, registered through entry points."""
