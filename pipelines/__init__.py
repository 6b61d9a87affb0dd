"""Release tooling for Collections: traffic shifts, rollback, status, prune, slot flips, preview guard.

Everything here talks to AWS with boto3 through services.core.aws (so AWS_ENDPOINT_URL reaches moto)
and reads the stack's outputs (pipelines.outputs); `collections-release` is the command line.
"""
