"""The fault matrix: what a hostile user, a crash or a full disk does to a run, each case in its own folder."""
