"""The streaming engine: a coordinator, N worker processes, open-loop schedules and stats."""
