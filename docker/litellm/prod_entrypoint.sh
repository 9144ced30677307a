#!/bin/sh
# Stand-in for upstream's docker/prod_entrypoint.sh: without SEPARATE_HEALTH_APP, USE_DDTRACE or USE_NEWRELIC
# (none of which the stack sets, and whose tools this image does not ship) upstream runs exactly this.
exec litellm "$@"
