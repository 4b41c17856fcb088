"""Backdrop's library: everything app.py delegates to."""
