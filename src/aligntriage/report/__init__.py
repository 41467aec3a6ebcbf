"""Pictures and reports people read."""
