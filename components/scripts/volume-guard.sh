#!/bin/sh
# The checks local-path-provisioner's `setup` and `teardown` both run first (the program
# puts this text ahead of each): act only on a directory directly under the shared path,
# and only where the share is really mounted.
#
# The provisioner's helper pod (busybox sh) sees the shared path of the node it runs on.
# If the share is not mounted there, the path is just a directory on the node's local
# disk: the marker that the node-mount step writes on the share is then missing, and the
# volume is refused, so a claim fails loudly instead of users writing to a disk that is
# neither shared nor kept.
#
# SHARED_PATH and ACTION are assigned above this text by the program; the provisioner
# sets VOL_DIR.
set -eu

: "${SHARED_PATH:?}" "${ACTION:?}" "${VOL_DIR:?}"
marker="$SHARED_PATH/.jupyterhub-platform-share"

case "$VOL_DIR" in
    "$SHARED_PATH"/*/* | "$SHARED_PATH"/.*)
        echo "refusing to $ACTION volume $VOL_DIR: not a directory directly under $SHARED_PATH" >&2
        exit 1
        ;;
    "$SHARED_PATH"/?*) ;;
    *)
        echo "refusing to $ACTION volume $VOL_DIR: not under the shared path $SHARED_PATH" >&2
        exit 1
        ;;
esac

# A symlink (the shared path itself, or a volume's folder pointing out of the share) would
# make the action follow it off the share: `[ -d ]` and chown follow links.
for path in "$SHARED_PATH" "$VOL_DIR"; do
    if [ -L "$path" ]; then
        echo "refusing to $ACTION volume $VOL_DIR: $path is a symlink" >&2
        exit 1
    fi
done

if [ ! -f "$marker" ]; then
    echo "refusing to $ACTION volume $VOL_DIR: the CephFS share is not mounted at $SHARED_PATH on this node ($marker is missing)" >&2
    exit 1
fi
