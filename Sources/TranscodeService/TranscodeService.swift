// The service (routes, WorkerPool, temp files) lands with its own issue; this keeps the target building.
