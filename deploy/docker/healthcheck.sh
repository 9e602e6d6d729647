#!/bin/bash
# The image's HEALTHCHECK: GET /healthz on the HTTP endpoint the daemon reports in its ready
# file ($PRUNERD_READY_FILE, default /tmp/prunerd-ready.json), so it follows whatever
# --http-listen says. No curl in the image: bash's /dev/tcp and one HTTP/1.0 request.
# Exit 0 when the daemon answers 200, 1 otherwise (with the reason on stderr).
set -uo pipefail
ready=${PRUNERD_READY_FILE:-/tmp/prunerd-ready.json}
[[ -s $ready ]] || { echo "healthcheck: no ready file $ready (starting, or not running)" >&2; exit 1; }
http=$(sed -n 's/.*"http" *: *"\([^"]*\)".*/\1/p' "$ready")
[[ -n $http ]] || { echo "healthcheck: the HTTP endpoint is off (--http-listen off)" >&2; exit 1; }
host=${http%:*}
port=${http##*:}
host=${host#[}
host=${host%]}
case $host in
  0.0.0.0 | "") host=127.0.0.1 ;;
  ::) host=::1 ;;
esac
status=$(timeout 5 bash -c '
  exec 3<>"/dev/tcp/$0/$1" || exit 1
  printf "GET /healthz HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n" "$0" >&3
  IFS= read -r line <&3 && printf "%s" "$line"' "$host" "$port" 2>/dev/null)
if [[ $status == "HTTP/1."?" 200"* ]]; then
  exit 0
fi
echo "healthcheck: GET http://$http/healthz: ${status:-no answer}" >&2
exit 1
