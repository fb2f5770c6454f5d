"""Reserved for later issues: inference."""
