"""The store: MLflow tracking (`tracking.py`), reading runs back (`runs.py`), typed progress events
(`events.py`) and the progress files that carry them (`progress.py`), and the cache (`cache.py`)."""
