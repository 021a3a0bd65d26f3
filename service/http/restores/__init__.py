"""/api/v1/restores."""
