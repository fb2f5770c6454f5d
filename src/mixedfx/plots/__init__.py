"""Reserved for later issues: plots."""
