"""/api/v1/backup-policies."""
