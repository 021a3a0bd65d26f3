"""Test fakes, kept out of the product: the in-memory engine (memory.py, its volume contents in
memory_files.py; tests/contract holds it to the real engine's behaviour) and the faults tier's
hold (holding.py)."""
