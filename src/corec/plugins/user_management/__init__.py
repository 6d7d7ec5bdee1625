"""user_management: users, roles and tokens for the API."""
