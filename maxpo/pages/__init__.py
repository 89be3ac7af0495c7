"""maxpo.pages."""
