"""Reserved for later issues: diagnostics."""
