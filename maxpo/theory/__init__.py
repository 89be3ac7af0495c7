"""maxpo.theory."""
