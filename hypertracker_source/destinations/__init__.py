"""Destination quirks: the checks and steps one destination type needs."""
