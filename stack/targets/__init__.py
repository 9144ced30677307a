"""Targets adapt a `stack.deployment.Deployment` to an engine: `pulumi` (pulumi-docker) and `compose` (a file)."""
