"""Pulumi entry point; the program lives in `stack.program` so it can be imported and tested."""

from stack.program import main

main()
