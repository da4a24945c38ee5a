"""See DESIGN §1."""
