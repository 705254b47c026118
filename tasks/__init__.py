"""The handoff vocabulary: Prefect tasks (and the waits between them) that flows are written in."""
