"""/api/v1/repositories."""
