"""Small query functions, one module per resource; each takes a connection."""
