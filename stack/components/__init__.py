"""Where the Pulumi components lived before `stack/targets/pulumi/`; kept only for `model_download` (see there)."""
