"""The HTTP layer: thin views over the domain use cases."""
