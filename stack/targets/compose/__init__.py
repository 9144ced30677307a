"""The docker-compose target: a Deployment written as a compose file with its config files beside it."""
