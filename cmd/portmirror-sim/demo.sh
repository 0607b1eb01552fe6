#!/bin/sh
# make demo: build portmirrord and portmirror-sim, start the daemon on a temporary data directory with free
# loopback ports, run a small simulated fleet against it, show the mirrored copies and the summary, stop the
# daemon. Extra arguments go to portmirror-sim (e.g. --hosts 5 --sessions 4 --frames 200).
set -eu

GO=${GO:-go}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/portmirror-demo.XXXXXX")
pid=""
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== building portmirrord and portmirror-sim"
"$GO" build -o "$tmp/portmirrord" ./cmd/portmirrord
"$GO" build -o "$tmp/portmirror-sim" ./cmd/portmirror-sim

echo "== starting portmirrord (data in $tmp/data, logs in $tmp/portmirrord.log)"
"$tmp/portmirrord" --data-dir "$tmp/data" --api-listen 127.0.0.1:0 --openflow-listen 127.0.0.1:0 --openflow-max-conns-per-addr 0 \
	>"$tmp/portmirrord.log" 2>&1 &
pid=$!
api="" of=""
i=0
while [ $i -lt 200 ]; do
	api=$(sed -n 's/.*msg="portmirrord ready".* api_addr=\([^ ]*\).*/\1/p' "$tmp/portmirrord.log")
	of=$(sed -n 's/.*msg="OpenFlow listener up" addr=\([^ ]*\).*/\1/p' "$tmp/portmirrord.log")
	[ -n "$api" ] && [ -n "$of" ] && break
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "portmirrord exited:"; cat "$tmp/portmirrord.log"; exit 1
	fi
	sleep 0.05
	i=$((i + 1))
done
if [ -z "$api" ] || [ -z "$of" ]; then
	echo "portmirrord did not report its addresses within 10s:"; cat "$tmp/portmirrord.log"; exit 1
fi
echo "   API http://$api/graphql, OpenFlow $of"

echo "== running a simulated fleet against it"
rc=0
"$tmp/portmirror-sim" --api "http://$api/graphql" --openflow "$of" --hosts 3 --vms-per-host 2 --sessions 2 --show 12 "$@" 2>&1 || rc=$?

echo "== stopping portmirrord"
kill -TERM "$pid"
wait "$pid" || true
pid=""
if [ $rc -eq 0 ]; then
	echo "== demo passed: every copy arrived where the rule says, once"
else
	echo "== demo FAILED (portmirror-sim exit $rc)"
fi
exit $rc
