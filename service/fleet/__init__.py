"""Fleet mode: one API over the Docker hosts of a Swarm (docs/design.md section 10): membership,
signed forwarding, fan-out, merged pages, placement and the clone's order, with no web
framework; the front door that serves them over HTTP is http/fleet."""
