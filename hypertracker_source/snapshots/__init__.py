"""Snapshots: tables fetched once per API data version (heatmaps, cohort risk)."""
