"""Fleet mode's front door (docs/design.md section 10): every request that reaches an instance is
served for the whole fleet. Lists are merged from every node, items and writes go to the node
that holds them (or will), and a request another instance forwarded is served here, as it is.
How each operation is served, it declares itself (`Serving.fleet`, http/smorest.py)."""
