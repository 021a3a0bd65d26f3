"""dockvol's rules, independent of HTTP and of the engine's SDK: they speak to the engine port only."""
