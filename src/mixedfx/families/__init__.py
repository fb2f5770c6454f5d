"""Reserved for later issues: families."""
