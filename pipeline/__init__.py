"""Jobs composed from the libraries: folder refinement, the demo and synthetic portraits."""
