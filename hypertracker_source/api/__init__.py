"""Transport: the client, its endpoints, errors, file downloads, answer bounds, pacing, budget."""
