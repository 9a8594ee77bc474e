"""Development tooling: the demo, its example pipeline, process helpers."""
