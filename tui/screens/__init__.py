"""The app's screens: runs, new experiment, monitor, plots, overlap, gallery, compare, help."""
