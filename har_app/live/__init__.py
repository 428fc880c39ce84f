"""Live inference on a sensor stream: merge and resample, step the model in lanes, decide, show, summarise."""
