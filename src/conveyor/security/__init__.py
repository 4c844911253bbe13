"""Authentication, authorization and traffic control: passwords, tokens, the policy table,
rate limits, and the auth use cases (login, refresh, users, API tokens) every door shares."""
