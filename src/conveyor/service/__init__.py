"""The use cases every door calls (HTTP, gRPC, CLI, the in-process App): jobs, the workers'
gateway, schedules, auth, housekeeping. Validation and rules live here, once."""
