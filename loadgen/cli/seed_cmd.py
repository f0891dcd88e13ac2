"""CLI commands (not yet written)."""
