"""The service around the pipeline: life cycle, signals, sd_notify, logging."""
