"""The machinery that runs a job without a request: the stream starter, the Step Functions steps, the
reconciler that closes what an execution left, background deletion, and logs and metrics. Imports
every package before it, never jobs or api.
"""
