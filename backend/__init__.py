"""Backdrop's infrastructure and deploy tooling (not deployed to Lambda)."""
