"""``tdc-harness``: the organizer's and researcher's command line (Typer, thin)."""
