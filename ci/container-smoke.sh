#!/usr/bin/env bash
# The image, built and run for real. Builds the repository's Dockerfile, unchanged, with
# podman, then runs the image offline (--network none) as a uid the image does not know:
#   1. --version;
#   2. harmonize-bids-phantom: a tiny two-subject phantom (1.5 T and 3 T sessions);
#   3. the participant level (bundled 1.5 T -> 3 T model, --sloppy) and the group level;
#   4. bids-validator-deno on the outputs;
#   5. as Apptainer runs it: read-only root file system, only /tmp and the bound folders
#      writable, singularity.def's %environment and %runscript; the participant level with
#      the other bundled model (3 T -> 1.5 T), the group level and the validator again.
#
#   ci/container-smoke.sh        # as root on Debian 12 with apt; `make test-integration`
#
# Why podman from a Debian 13 chroot: no image registry is reachable from CI, and Debian
# 12's podman 4.3 (buildah 1.28) and docker 20.10 reject `RUN --network=none`. Podman 5.4
# runs from a Debian 13 (trixie) chroot made with mmdebstrap, and a local stand-in made
# from Debian's python 3.11 takes the place of the python:3.11-slim-bookworm base. The
# chroot, the base and podman's layer cache stay under SMOKE_WORK for the next run: about
# 6 minutes and 5 GB from scratch on 2 cores. Users build with `docker build` (BuildKit)
# as README says; nothing here changes the Dockerfile.
#
# Settings (environment variables):
#   SMOKE_WORK  working folder, outside the repository (default /var/tmp/harmonize-bids-ci/container)
#   MIRROR  Debian mirror                           (default http://deb.debian.org/debian)
#   WHEELS  a folder of local wheels the build may use (default /opt/wheels when it exists):
#           a CPU build of torch there keeps PyPI's multi-GB CUDA build out of the image
#   TAG     image name                              (default: the Dockerfile's IMAGE:VERSION)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$REPO/harmonize_bids/__init__.py")
IMAGE=$(sed -n 's/^ARG IMAGE=//p' "$REPO/Dockerfile")
TAG=${TAG:-$IMAGE:$VERSION}
BASE=$(sed -n 's/^ARG PYTHON_VERSION=//p' "$REPO/Dockerfile")
BASE=docker.io/library/python:${BASE}-slim-bookworm
WORK=${SMOKE_WORK:-/var/tmp/harmonize-bids-ci/container}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
WHEELS=${WHEELS:-/opt/wheels}
R=$WORK/podman-root
USER_ID=12345
export PODMAN_IGNORE_CGROUPSV1_WARNING=1

log() { printf '[container-smoke %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
fail() { log "FAIL: $*"; exit 1; }
timed() {  # timed CMD...: run it, log its wall time, keep its exit status
  local s=$SECONDS rc=0
  "$@" || rc=$?
  log "took $((SECONDS - s)) s (exit $rc): ${*:1:6}"
  return "$rc"
}

[ "$(id -u)" = 0 ] || fail "run as root (mmdebstrap, chroot and podman need it)"
case "$WORK" in "$REPO"|"$REPO"/*) fail "SMOKE_WORK must lie outside the repository";; esac
mkdir -p "$WORK"

if ! command -v mmdebstrap >/dev/null; then
  log "installing mmdebstrap"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap \
    >/dev/null
fi

# 1. Podman 5.4 in a Debian 13 chroot (about 60 s and 410 MB; kept for the next run).
if [ ! -x "$R/usr/bin/podman" ]; then
  rm -rf "$R"
  log "making the podman chroot (Debian 13)"
  timed mmdebstrap --variant=minbase --quiet \
    --include=podman,buildah,runc,conmon,netavark,aardvark-dns,iptables,nftables,ca-certificates,passt,catatonit,fuse-overlayfs \
    trixie "$R" "deb $MIRROR trixie main"
fi
cp /etc/resolv.conf "$R/etc/resolv.conf"
mkdir -p "$R/etc/containers" "$R/ctx" "$R/opt/wheels"
cat > "$R/etc/containers/containers.conf" <<'EOF'
[containers]
# CAP_SYS_RESOURCE is dropped on CI machines: podman's default rlimits (nofile 1048576,
# nproc 4194304) fail with "setrlimit ... Operation not permitted".
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
# crun refuses the hybrid cgroup v1/v2 layout of these kernels; runc works.
runtime = "runc"
EOF

# tp [--ctx DIR] CMD...: run CMD in the chroot, in a private mount namespace; DIR appears
# there as /ctx. The mounts vanish with the namespace.
tp() {
  local ctx=
  if [ "$1" = --ctx ]; then ctx=$(realpath "$2"); shift 2; fi
  # shellcheck disable=SC2016  # expanded by the inner bash
  R="$R" CTX="$ctx" WHEELS="$WHEELS" unshare -m --propagation private bash -c '
    set -e
    mount --bind "$R" "$R"     # containers/storage remounts / : it must be a mount point
    mount -t proc proc "$R/proc"
    mount --rbind /sys "$R/sys"
    mount --rbind /dev "$R/dev"
    mount -t tmpfs tmpfs "$R/run"
    if [ -d "$WHEELS" ]; then mount --bind -o ro "$WHEELS" "$R/opt/wheels"; fi
    if [ -n "$CTX" ]; then mount --bind "$CTX" "$R/ctx"; fi
    exec chroot "$R" /usr/bin/env PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"' tp "$@"
}

# 2. The base: Debian 12's python 3.11 as python:3.11-slim-bookworm, tagged docker.io/...
#    so that podman finds it and never tries to pull. It trusts this machine's CA
#    certificates (a TLS-intercepting egress proxy) so that pip reaches PyPI in the build,
#    and points pip at /opt/wheels (mounted into the build when WHEELS exists).
if ! tp podman image exists "$BASE"; then
  log "making the stand-in base image $BASE"
  hooks=()
  for ca in /usr/local/share/ca-certificates/*.crt; do
    [ -f "$ca" ] && hooks+=(--customize-hook="copy-in $ca /usr/local/share/ca-certificates/")
  done
  # shellcheck disable=SC2016  # "$1" is mmdebstrap's, expanded by its hook
  timed mmdebstrap --variant=minbase --quiet \
    --include=ca-certificates,python3,python3-venv,python-is-python3 \
    ${hooks[@]+"${hooks[@]}"} --customize-hook='chroot "$1" update-ca-certificates' \
    bookworm "$WORK/python-base.tar" \
    "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" \
    "deb ${MIRROR%/debian}/debian-security bookworm-security main"
  timed tp --ctx "$WORK" podman import \
    --change 'ENV LANG=C.UTF-8' --change 'ENV PIP_FIND_LINKS=/opt/wheels' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' \
    /ctx/python-base.tar "$BASE"
  rm -f "$WORK/python-base.tar"
fi

# 3. The build, the Dockerfile as it is. --format docker: in OCI format podman ignores
#    SHELL, so pipefail would be silently off in every RUN.
wheels=()
if [ -d "$WHEELS" ]; then wheels=(-v /opt/wheels:/opt/wheels:ro); fi
# Each build leaves the image it replaces untagged (2-3 GB): prune those, before (a failed
# run's) and after, so that repeated runs keep one image and its layer cache.
tp podman image prune -f >/dev/null
log "building $TAG from $REPO"
timed tp --ctx "$REPO" podman build --format docker ${wheels[@]+"${wheels[@]}"} \
  --build-arg VCS_REF="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  --build-arg BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  -t "$TAG" /ctx
tp podman image prune -f >/dev/null
tp podman images "$TAG"

# 4. Smoke tests, offline, as a uid the image's /etc/passwd does not list.
S=$WORK/smoke
rm -rf "$S"
mkdir -p "$S"/{out,work,out-apptainer,work-apptainer,home}
chown -R "$USER_ID:$USER_ID" "$S"
run() {  # run [podman run options...] -- IMAGE ARGS...: S is /w inside
  tp --ctx "$S" podman run --rm --network none -u "$USER_ID:$USER_ID" -v /ctx:/w "$@"
}
check_json() {  # check_json FILE PYTHON-EXPRESSION-ON-d
  python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2" \
    || fail "$1: expected $2"
}
harmonized() { find "$1" -name '*_desc-harmonized_T1w.nii.gz' | wc -l; }
models_applied() {  # the bundled models named by the harmonized sidecars under a folder
  python3 - "$1" <<'PY'
import json, pathlib, sys
sidecars = pathlib.Path(sys.argv[1]).rglob("*_desc-harmonized_T1w.json")
records = [json.loads(p.read_text())["Harmonization"] for p in sidecars]
print(" ".join(sorted({r["ModelName"] for r in records if r["ModelApplied"]})))
PY
}

log "1/5 --version"
printed=$(tp podman run --rm --network none -u "$USER_ID:$USER_ID" "$TAG" --version)
[ "$printed" = "harmonize-bids $VERSION" ] || fail "--version printed '$printed'"
log "PASS --version: $printed"

log "2/5 the phantom"
timed run --entrypoint harmonize-bids-phantom "$TAG" /w/bids --subjects 2 --size tiny --seed 5
chmod -R a+rX "$S/bids"
images=$(find "$S/bids" -path '*/anat/*_T1w.nii.gz' -not -path '*/derivatives/*' | wc -l)
[ "$images" = 4 ] || fail "the phantom has $images T1w images, not 4"
log "PASS phantom: $images T1w images"

log "3/5 participant and group levels, bundled 1.5 T -> 3 T model"
timed run "$TAG" /w/bids /w/out participant -w /w/work --sloppy --nprocs 2 \
  || fail "participant level exited $?"
[ "$(harmonized "$S/out")" = 4 ] || fail "participant level: $(harmonized "$S/out") harmonized images, not 4"
[ "$(models_applied "$S/out")" = 1p5T-to-3T ] || fail "participant level: model $(models_applied "$S/out")"
check_json "$S/out/dataset_description.json" 'd["GeneratedBy"][0]["Container"]["Type"] == "docker"'
timed run "$TAG" /w/bids /w/out group -w /w/work --sloppy --nprocs 2 || fail "group level exited $?"
for f in group_T1w.tsv group_T1w_paired.tsv group_T1w.html sub-01.html sub-02.html; do
  [ -s "$S/out/$f" ] || fail "missing $f"
done
log "PASS participant and group: 4 harmonized images, group tables and reports"

log "4/5 bids-validator-deno on the outputs"
timed run --entrypoint bids-validator-deno "$TAG" /w/out || fail "the outputs are not valid BIDS"
log "PASS validator"

log "5/5 as Apptainer runs it: read-only root, /tmp and the bound folders writable"
# What `apptainer run --containall` gives: the image read-only, a writable /tmp, the bound
# folders, an empty writable home, the uid of the user, a minimal /dev whose /dev/shm is
# writable (Python's multiprocessing needs it), and singularity.def's %environment
# sourced before its %runscript.
section() { awk -v s="%$1" '$1 == s { on = 1; next } /^%/ { on = 0 } on' "$REPO/singularity.def"; }
script="$(section environment)
$(section runscript)"
apptainer() {
  tp --ctx "$S" podman run --rm --network none -u "$USER_ID:$USER_ID" \
    --read-only --read-only-tmpfs=false --tmpfs /tmp:rw,exec,mode=1777 --tmpfs /dev/shm \
    -v /ctx/bids:/data:ro -v /ctx/out-apptainer:/out -v /ctx/work-apptainer:/work \
    -v /ctx/home:/home/user -e HOME=/home/user -w /home/user \
    --entrypoint /bin/sh "$TAG" -c "$script" harmonize-bids "$@"
}
timed apptainer /data /out participant -w /work --target-field 1.5 --sloppy --nprocs 2 \
  || fail "read-only participant level exited $?"
[ "$(harmonized "$S/out-apptainer")" = 4 ] || fail "read-only run: not 4 harmonized images"
check_json "$S/out-apptainer/dataset_description.json" \
  'd["GeneratedBy"][0]["Container"]["Type"] == "singularity"'
[ "$(models_applied "$S/out-apptainer")" = 3T-to-1p5T ] || fail "read-only run: model $(models_applied "$S/out-apptainer")"
timed apptainer /data /out group -w /work --sloppy --nprocs 2 || fail "read-only group level exited $?"
[ -s "$S/out-apptainer/group_T1w.html" ] || fail "read-only group level: no group_T1w.html"
timed run --entrypoint bids-validator-deno "$TAG" /w/out-apptainer \
  || fail "the read-only run's outputs are not valid BIDS"
log "PASS read-only run with singularity.def's environment (3 T -> 1.5 T), validator clean"
log "all smoke checks passed ($TAG)"
