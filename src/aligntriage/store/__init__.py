"""Runs that last: run folders, safe checkpoints, and (later) the run index."""
