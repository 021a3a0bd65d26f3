"""/api/v1/backups."""
