"""The in-process runtime: the tracking API, the supervisor, sweeps, reproduce."""
