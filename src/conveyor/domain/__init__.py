"""The domain floor: the job model, statuses and transitions, the retry policy, the records
every layer passes around, limits and name rules, cron maths. Pure: it imports no I/O and
no framework, and nothing above it."""
