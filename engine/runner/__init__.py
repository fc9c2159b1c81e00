"""Running experiments: trials (`trials.py`), what a trial does (`tasks.py`), the worker side (`worker.py`),
executors (`executors.py`, local or Ray), the run context kinds work through (`context.py`), the steps several
kinds compose (`steps.py`) and the runner that owns the parent run (`runner.py`)."""
