"""The deploy tooling's one error: a prerequisite is missing or an AWS step failed, said plainly."""

from __future__ import annotations


class DeployError(Exception):
    """Something the deployer must fix; the message names it and, where known, the fix."""
