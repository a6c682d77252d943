"""Repositories: queries over one session. They flush when they must, never commit."""
