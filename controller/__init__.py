"""netctl: Docker's container networking as a declarative reconcile controller."""
