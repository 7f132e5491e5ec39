"""Configuration: the source's constants and the settings, checked before any request."""
