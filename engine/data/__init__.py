"""Data sets: the registry (`registry.py`, no torch), file formats (`formats.py`, numpy) and the on-device
`Dataset` (`dataset.py`). Import from the submodules; this package imports nothing, so reading the
registry never loads torch."""
