"""loadgen: OLTP hospital simulator for PostgreSQL, built to test CDC pipelines."""

__version__ = "0.1.0"
