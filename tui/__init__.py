"""prunelab's terminal UI (Textual): launch, watch and analyse experiments, over SSH too.

Only `tui.app` and the Textual widgets load at start; the engine, MLflow and torch
are imported by thread workers, so the first frame does not wait for them.
"""
