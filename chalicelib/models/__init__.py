"""Bedrock image models: the registry (data) and one adapter per model family."""
