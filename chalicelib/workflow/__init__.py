"""The machinery that runs a job without a request: the stream starter, the Step Functions steps, the
reconciler that closes what an execution left, background work as one mechanism (background: a
recipe per kind, one start, one worker, one sweep), deletion, and logs and metrics. Imports every
package before it, never jobs or api.
"""
