"""`python -m engine.cli`: the engine's command line without the TUI (detached runs start this way)."""
from . import main

main()
