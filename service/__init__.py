"""dockvol: a REST service for Docker storage."""
