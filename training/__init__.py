"""Datasets, windowing, the L2MU model, its training loop and compression (torch imported lazily)."""
