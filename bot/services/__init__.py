"""What the REST API and the control room both do with actions, written once."""
