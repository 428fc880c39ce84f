"""The `har` command-line application: CLI, stream sources and the live runtime."""
