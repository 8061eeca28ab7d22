"""Caseline's REST API (``/api/v1/``): thin views over the selectors, services and permission rules."""
