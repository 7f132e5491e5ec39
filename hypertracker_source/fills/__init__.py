"""The fills engine: windows, planner, run budget, marks, cursor pages, reads, data contract."""
