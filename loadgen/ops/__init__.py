"""Workload operations: the registry (data), mix parsing and the per-worker ``Workload``."""
