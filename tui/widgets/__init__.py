"""Reusable widgets: the runs table, the progress panel, the overlap heatmap and the image grid."""
