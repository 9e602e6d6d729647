#!/usr/bin/env bash
# Builds the CPU image from the Dockerfile with podman on this machine and runs it:
#   1. the base image debian:12 from the Debian archive if it is missing (base-image.sh);
#   2. podman build (chroot isolation, cgroupfs, --pull=never, docker format so HEALTHCHECK
#      is kept), then the image's size and configuration, and a check that it holds no
#      compiler, -dev package or build tree;
#   3. `podman run` cannot start containers in this sandbox (crun cannot set rlimits), so the
#      image's file system is exported (podman create + podman export) and its entrypoint runs
#      in a chroot as the image's user, with the image's environment and working directory, the
#      bundled models bind-mounted read-only at /models and gRPC/HTTP on loopback;
#   4. /healthz and /readyz from the host, the image's HEALTHCHECK command inside the chroot,
#      a Wanda job on stories260K through the host's prunectl (submit --wait, a quality gate,
#      the download checked by sha256), then SIGTERM and the daemon's exit.
# Slow (the builder compiles the project: 24 minutes the first time on 2 shared cores, 3.5 with
# the ccache mount warm); not part of `make test`.
#
#   make image-test                          (or: bash deploy/docker/image-test.sh [build-dir])
#   SKIP_BUILD=1 ...      reuse the image built last time
#   IMAGE=localhost/prunerd:cpu  WORK=/var/tmp/prunerd-image-test  (defaults)
# Needs root, podman, debootstrap (only when debian:12 is missing), and the host's prunectl.
# Exits 77 when a tool is missing. The whole output is also written to $WORK/image-test.log.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$REPO/build}
IMAGE=${IMAGE:-localhost/prunerd:cpu}
WORK=${WORK:-/var/tmp/prunerd-image-test}
DATA=${PRUNERD_TEST_DATA:-$REPO/../shared/data}

skip() { echo "image-test: SKIP: $*" >&2; exit 77; }
[[ $(id -u) -eq 0 ]] || skip "needs root (chroot, mount)"
for tool in podman chroot mount curl; do
  command -v "$tool" >/dev/null || skip "$tool is not installed"
done
PRUNECTL=$BUILD/bin/prunectl
[[ -x $PRUNECTL ]] || { echo "image-test: $PRUNECTL is missing (build prunectl)" >&2; exit 1; }
DATA=$(cd "$DATA" && pwd)
[[ -f $DATA/models/stories260K/stories260K.bin ]] || {
  echo "image-test: no stories260K under $DATA (set PRUNERD_TEST_DATA)" >&2; exit 1; }

mkdir -p "$WORK"
exec > >(tee "$WORK/image-test.log") 2>&1
ROOTFS=$WORK/rootfs
MOUNTS=()
DAEMON_PID=""
cleanup() {
  if [[ -n $DAEMON_PID ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -KILL "$DAEMON_PID" 2>/dev/null || true
  fi
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[$i]}" 2>/dev/null || true; done
  # Never delete through a mount that is still there.
  if [[ -d $ROOTFS ]] && ! findmnt -rn -o TARGET | grep -q "^$ROOTFS"; then rm -rf "$ROOTFS"; fi
}
trap cleanup EXIT
step() { echo; echo "== $*"; }

step "base image"
bash "$REPO/deploy/docker/base-image.sh"

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  step "podman build -t $IMAGE (the builder compiles prunerd and prunectl)"
  start=$(date +%s)
  revision=$(git -C "$REPO" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
  nice -n 10 podman build --isolation=chroot --cgroup-manager=cgroupfs --pull=never \
    --format docker --build-arg REVISION="$revision" -t "$IMAGE" -f "$REPO/Dockerfile" "$REPO"
  echo "image-test: built in $(( $(date +%s) - start )) s"
fi

step "the image"
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
echo "size       $size bytes ($(awk -v s="$size" 'BEGIN {printf "%.0f MB, %.2f GiB", s/1e6, s/2^30}'))"
podman image inspect --format 'user       {{.Config.User}}
entrypoint {{.Config.Entrypoint}} {{.Config.Cmd}}
workdir    {{.Config.WorkingDir}}
volumes    {{range $k, $v := .Config.Volumes}}{{$k}} {{end}}
ports      {{range $k, $v := .Config.ExposedPorts}}{{$k}} {{end}}
healthcheck {{.Config.Healthcheck.Test}} every {{.Config.Healthcheck.Interval}}
labels     {{.Config.Labels}}' "$IMAGE"
podman history --format '{{.Size}}\t{{.CreatedBy}}' "$IMAGE" | cut -c1-110 | head -n 20

step "podman create + podman export -> $ROOTFS"
rm -rf "$ROOTFS"
mkdir -p "$ROOTFS"
cid=$(podman create --no-healthcheck "$IMAGE")
podman export "$cid" | tar -C "$ROOTFS" -x
podman rm "$cid" >/dev/null
echo "exported $(du -sh "$ROOTFS" | cut -f1)"
pkgs=$(chroot "$ROOTFS" dpkg-query -W -f '${Package}\n')
echo "packages   $(wc -l <<<"$pkgs") installed"
build_stuff=$(grep -E -- '-dev$|^(gcc|g\+\+|cpp|cmake|make|binutils|ccache)(-[0-9.]+)?$' <<<"$pkgs" || true)
if [[ -n $build_stuff ]]; then
  echo "image-test: FAIL: build packages in the runtime image: $build_stuff"; exit 1
fi
for p in /src /build /out /usr/include/torch /usr/bin/cc; do
  if [[ -e $ROOTFS$p ]]; then echo "image-test: FAIL: $p is in the runtime image"; exit 1; fi
done
echo "no compiler, -dev package, /src, /build or headers in the image"
echo "binaries   $(cd "$ROOTFS/usr/local/bin" && ls | tr '\n' ' ')"
echo "blas       $(chroot "$ROOTFS" readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3)"
owner=$(stat -c '%u:%g %a' "$ROOTFS/var/lib/prunerd")
echo "data dir   /var/lib/prunerd $owner"

step "running the image's entrypoint in a chroot as its user"
# What a container runtime would give it: /proc, a few device nodes, the data volume (the
# image's own directory here), the models read-only, the config and datasets it ships with.
mount -t proc proc "$ROOTFS/proc" && MOUNTS+=("$ROOTFS/proc")
for dev in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9; do
  IFS=: read -r name major minor <<<"$dev"
  rm -f "$ROOTFS/dev/$name"
  mknod -m 0666 "$ROOTFS/dev/$name" c "$major" "$minor"
done
mount --bind "$DATA" "$ROOTFS/models" && MOUNTS+=("$ROOTFS/models")
mount -o remount,bind,ro "$ROOTFS/models"
printf '{"tinystories": "/models/text/tinystories/tinystories_val_head.txt"}\n' \
  > "$ROOTFS/etc/prunerd/datasets/datasets.json"
user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
workdir=$(podman image inspect --format '{{.Config.WorkingDir}}' "$IMAGE")
mapfile -t entry < <(podman image inspect --format '{{range .Config.Entrypoint}}{{println .}}{{end}}' "$IMAGE" | sed '/^$/d')
mapfile -t envs < <(podman image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$IMAGE" | sed '/^$/d')
in_image() {  # run a command in the image's file system as its user, with its environment
  chroot --userspec="$user" "$ROOTFS" /usr/bin/env -i "${envs[@]}" HOME=/var/lib/prunerd \
    /bin/sh -c 'cd "$0" && exec "$@"' "$workdir" "$@"
}
echo "chroot --userspec=$user $ROOTFS ${entry[*]} --listen=127.0.0.1:0 --http-listen=127.0.0.1:0"
in_image "${entry[@]}" --listen=127.0.0.1:0 --http-listen=127.0.0.1:0 \
  > "$WORK/prunerd.log" 2>&1 &
DAEMON_PID=$!
ready=$ROOTFS/tmp/prunerd-ready.json
for _ in $(seq 600); do
  [[ -s $ready ]] && break
  kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$WORK/prunerd.log"; echo "image-test: FAIL: the daemon exited"; exit 1; }
  sleep 0.1
done
[[ -s $ready ]] || { cat "$WORK/prunerd.log"; echo "image-test: FAIL: not ready in 60 s"; exit 1; }
echo "ready file $(cat "$ready")"
TARGET=$(sed -n 's/.*"grpc":"\([^"]*\)".*/\1/p' "$ready")
HTTP=$(sed -n 's/.*"http":"\([^"]*\)".*/\1/p' "$ready")
pid=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$ready")
echo "process    $(ps -o user=,pid=,args= -p "$pid" | cut -c1-150)"
head -n 5 "$WORK/prunerd.log"

step "health"
echo "GET /healthz -> $(curl -fsS "http://$HTTP/healthz")"
echo "GET /readyz  -> $(curl -fsS "http://$HTTP/readyz")"
hc=0
in_image /usr/local/bin/prunerd-healthcheck || hc=$?
echo "HEALTHCHECK (prunerd-healthcheck in the image) -> exit $hc"
[[ $hc -eq 0 ]] || { echo "image-test: FAIL: the image's health check failed"; exit 1; }

step "prunectl (host) info"
"$PRUNECTL" info --target "$TARGET"

step "prunectl (host) submit --wait: Wanda 50% on stories260K, gate +1000%"
rm -rf "$WORK/out"
code=0
"$PRUNECTL" submit --target "$TARGET" --model models/stories260K/stories260K.bin \
  --method wanda --ratio 0.5 --calib-dataset tinystories --calib-samples 16 --calib-seqlen 128 \
  --eval-dataset tinystories --eval-seqlen 128 --eval-max-windows 16 \
  --request-id "image-test-$(date +%s)" --label via=image-test \
  --wait --max-ppl-increase 1000% --download "$WORK/out" || code=$?
echo "prunectl exited $code"
[[ $code -eq 0 ]] || { tail -n 20 "$WORK/prunerd.log"; echo "image-test: FAIL: the job"; exit 1; }
ls -l "$WORK/out" "$WORK/out/model"
echo "in the image's volume: $(find "$ROOTFS/var/lib/prunerd" -type f | wc -l) files, owner" \
  "$(stat -c '%u:%g' "$ROOTFS/var/lib/prunerd/jobs.db")"
echo
echo "/metrics (excerpt):"
curl -fsS "http://$HTTP/metrics" | grep -E '^prunerd_(build_info|jobs\{|jobs_finished_total|layer_duration_seconds_count|calibration_tokens_total)' | grep -v ' 0$'

step "SIGTERM"
kill -TERM "$pid"
exit_code=0
wait "$DAEMON_PID" || exit_code=$?
DAEMON_PID=""
tail -n 4 "$WORK/prunerd.log"
echo "prunerd exited with $exit_code"
hc=0
in_image /usr/local/bin/prunerd-healthcheck 2>&1 || hc=$?
echo "HEALTHCHECK after SIGTERM -> exit $hc"
[[ $exit_code -eq 0 && $hc -ne 0 ]] || { echo "image-test: FAIL: shutdown"; exit 1; }
echo
echo "image-test: ok ($IMAGE, $size bytes)"
