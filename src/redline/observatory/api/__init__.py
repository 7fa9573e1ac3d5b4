"""HTTP routes of the observatory, one module per concern."""
