"""A run's life: the lock, recovery of a killed run, chunks, stopping and failures."""
