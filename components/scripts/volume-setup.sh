#!/bin/sh
# local-path-provisioner `setup`: make the directory of a new volume on the shared mount.
#
# Runs in the provisioner's helper pod (busybox sh), which sees the shared path of the
# node it was scheduled on. If the share is not mounted on that node, the path is just a
# directory on its local disk: the marker that the node-mount step writes on the share is
# then missing, and the volume is refused, so the claim fails loudly instead of users
# writing to a disk that is neither shared nor kept.
#
# SHARED_PATH is assigned above this text by the program; the provisioner sets VOL_DIR.
set -eu

: "${SHARED_PATH:?}" "${VOL_DIR:?}"
marker="$SHARED_PATH/.jupyterhub-platform-share"

case "$VOL_DIR" in
    "$SHARED_PATH"/*/* | "$SHARED_PATH"/.*) echo "refusing volume $VOL_DIR: not a directory directly under $SHARED_PATH" >&2; exit 1 ;;
    "$SHARED_PATH"/?*) ;;
    *) echo "refusing volume $VOL_DIR: not under the shared path $SHARED_PATH" >&2; exit 1 ;;
esac

if [ ! -f "$marker" ]; then
    echo "refusing volume $VOL_DIR: the CephFS share is not mounted at $SHARED_PATH on this node ($marker is missing)" >&2
    exit 1
fi

# The parent is the share itself, so no -p: a retried claim finds its directory there.
[ -d "$VOL_DIR" ] || mkdir -m 0777 "$VOL_DIR"
