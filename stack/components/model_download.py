"""The model-download provider under the module path it had before `stack/` had packages.

Pulumi stores a dynamic provider in each resource's state as a pickle that names its class by module path, and
reads it back from the old state to refresh or delete the resource. Stacks deployed before the move name this path.
"""

from stack.targets.pulumi.model_download import ModelDownloadProvider

__all__ = ["ModelDownloadProvider"]
