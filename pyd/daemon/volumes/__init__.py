"""Named and anonymous volumes (the local driver)."""
