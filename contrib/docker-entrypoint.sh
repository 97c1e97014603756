#!/bin/sh
# docker-entrypoint.sh - droverd as a container's PID 1.
#
# droverd reaps every orphan (it is PID 1 here, and a subreaper anyway),
# stops services in reverse dependency order on SIGTERM (`docker stop`),
# and, with `critical = yes` on the container's main service, exits with
# that service's exit status when it ends.
#
#   [service app]
#   command  = /usr/local/bin/app
#   critical = yes
set -e
exec /usr/local/sbin/droverd -c "${DROVER_CONF:-/etc/drover/drover.conf}" \
	-S "${DROVER_SOCKET:-/run/drover/control.sock}"
