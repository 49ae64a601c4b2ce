#!/bin/sh
# Runs every benchmark script in bench/ in turn and prints their figures.
# Scripts that need root say so and are skipped when not root.
set -u
cd "$(dirname "$0")"
status=0
for s in *.sh; do
	[ "$s" = run.sh ] && continue
	# When and under what load each script ran: figures under TCG swing
	# with other work on the host.
	echo "== $s ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg))"
	sh "./$s" || { echo "!! $s failed"; status=1; }
	echo
done
exit $status
