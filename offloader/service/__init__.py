"""The verification service: HTTP API, job store, workers and the sandbox they run user code in."""
