#!/bin/sh
# Build Covey's image with Debian's podman on a machine without an image registry.
#
#   packaging/podman.sh engine   install podman, runc, catatonit, debootstrap (Debian packages)
#   packaging/podman.sh base     debootstrap Debian bookworm and import it as debian:bookworm-slim
#   packaging/podman.sh image    build packaging/Dockerfile as localhost/covey:latest
#   packaging/podman.sh all      the three, each skipped when already done
#   packaging/podman.sh can-run  engine + base, then exit 0 when a container starts here
#
# With a registry, `docker build -f packaging/Dockerfile -t covey .` is all it takes.
set -eu
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="$PWD/packaging/containers.conf"
IMAGE=${COVEY_IMAGE:-localhost/covey:latest}
BASE=localhost/debian:bookworm-slim
ROOTFS=${COVEY_ROOTFS:-/var/tmp/covey-rootfs}
WHEELS=${COVEY_TORCH_WHEELS:-/opt/wheels}   # where a torch CPU wheel may lie (none: PyTorch's index)
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi

say() { echo "podman.sh: $*"; }

engine() {
    missing=""
    for p in podman runc catatonit debootstrap uidmap; do
        dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    say "installing Debian packages:$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
}

mirror() {  # the Debian mirror this machine's apt uses
    uri=$(grep -hs -m1 -E '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
          | grep -v security | head -n1 | sed -E 's/^URIs: *//; s/^deb +(\[[^]]*\] +)?//; s/ .*//')
    echo "${uri:-http://deb.debian.org/debian}"
}

base() {
    $SUDO podman image exists "$BASE" && return 0
    say "debootstrap bookworm from $(mirror) into $ROOTFS"
    $SUDO rm -rf "$ROOTFS"
    $SUDO debootstrap --variant=minbase --include=ca-certificates bookworm "$ROOTFS" "$(mirror)" >/dev/null
    # The host's extra CA certificates (a TLS-inspecting egress proxy, a company CA), so apt
    # and pip inside builds verify TLS as the host does.
    if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
        $SUDO cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
        $SUDO chroot "$ROOTFS" update-ca-certificates >/dev/null
    fi
    $SUDO rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
    $SUDO tar -C "$ROOTFS" -c . | $SUDO podman import -q - "$BASE" >/dev/null
    $SUDO rm -rf "$ROOTFS"
    say "imported $BASE"
}

image() {
    if ls "$WHEELS"/torch-2.13.0+cpu-*.whl >/dev/null 2>&1; then
        wheels="-v $WHEELS:/wheels:ro --build-arg TORCH_WHEELS=/wheels"
    else
        wheels=""
    fi
    say "building $IMAGE"
    # shellcheck disable=SC2086
    $SUDO podman build -q --pull=never --format docker $wheels -f packaging/Dockerfile -t "$IMAGE" . >/dev/null
    say "built $IMAGE ($($SUDO podman image inspect --format '{{.Size}}' "$IMAGE") bytes)"
}

can_run() {  # can this machine install an engine and start a container? Says why not.
    if ! command -v apt-get >/dev/null 2>&1; then say "no apt-get"; return 1; fi
    if [ "$(id -u)" != 0 ] && ! sudo -n true 2>/dev/null; then say "needs root or sudo"; return 1; fi
    engine || { say "could not install the engine's Debian packages"; return 1; }
    base || { say "could not make the Debian base image"; return 1; }
    if ! err=$($SUDO podman run --rm "$BASE" /bin/true 2>&1); then
        say "podman cannot start a container on this machine: $err"; return 1
    fi
}

case "${1:-all}" in
    can-run) can_run ;;
    engine) engine ;;
    base) base ;;
    image) image ;;
    all) engine; base; image ;;
    *) echo "usage: $0 [engine|base|image|all|can-run]" >&2; exit 2 ;;
esac
