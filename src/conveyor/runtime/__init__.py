"""What every long-running Conveyor process sets up around its work: JSON logging, the
start-up heap freeze, the probe server (/metrics, /livez, /readyz) of workers and schedulers."""
