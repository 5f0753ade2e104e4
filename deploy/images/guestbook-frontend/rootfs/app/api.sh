# shellcheck shell=sh
# Where the API is: by its service name on the stack's network (Docker's DNS).
API_URL="http://${API_HOST:-api}:${API_PORT:-8080}"
