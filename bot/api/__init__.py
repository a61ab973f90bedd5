"""The REST API under `/api/v1` (bearer `API_TOKEN`)."""
