"""Downloading declared model sources into models_dir. Standard library only: `stack.targets.pulumi` copies this
package into a one-shot container on the Docker host."""
