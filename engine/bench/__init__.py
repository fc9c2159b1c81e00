"""`prunelab bench ...`: ours against the textbook way and the best peers, as ratios measured in one run
(absolute numbers on a shared machine are noisy). `train.py`, `scores.py`, `tui.py`; shared timing in `common.py`."""
