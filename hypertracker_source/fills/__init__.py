"""The fills engine: filters, windows, marks, cursor pages and the data contract."""
