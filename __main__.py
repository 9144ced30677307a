"""Pulumi entry point; the program lives in `stack.targets.pulumi.program` so it can be imported and tested."""

from stack.targets.pulumi.program import main

main()
