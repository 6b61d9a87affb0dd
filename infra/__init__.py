"""The Pulumi program that deploys Collections (see infra/__main__.py)."""
