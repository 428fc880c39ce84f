"""The integer L2MU: one numpy reference (the specification, docs/integer-engine.md), the quantisation of a run's
float weights into it, and the dependency-free C99 engine that runs it event-driven on the host and on Cortex-M."""
