"""gRPC door: JobService and WorkerService over the same service layer as the HTTP API, plus
the remote worker's client (`remote.RemoteWorkerStore`). Generated code lives in `gen/`."""
