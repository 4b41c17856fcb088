"""The vocabulary every other room shares: contracts (statuses, keys, limits), errors with their stable
codes, configuration, the Lambda functions' declarations, request validation, the background and
estimate rules, and the words and verdicts the front ends show (scorecard, wording, outputs,
webhook_rules). Standard library only at module level (no boto3, Pillow or numpy) and imports
nothing outside core: this is the one package the CLI and the web app import.
"""
