"""The core: the two declarations (contracts), the registry that pairs them, the errors and the
value constraints of options. Imports nothing else of rnnbench."""
