"""Authentication and traffic-control mechanics: password hashing, tokens, the policy table,
rate limits, secret redaction. The auth use cases that combine them live in
conveyor.service.auth."""
