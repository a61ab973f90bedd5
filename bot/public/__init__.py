"""Public pages without a login and without personal data (the privacy statement)."""
