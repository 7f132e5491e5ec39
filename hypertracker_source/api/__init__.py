"""Transport: the HTTP client, its endpoints, answers' bounds, pacing and the request budget."""
