"""Fleet mode: one API over the Docker hosts of a Swarm (docs/design.md section 10)."""
