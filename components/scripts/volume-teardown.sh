#!/bin/sh
# local-path-provisioner `teardown`: remove a deleted volume's directory from the share.
#
# Runs only for a storage class with reclaimPolicy Delete (the default Retain never calls
# it). The same guards as setup apply: only a directory directly under the shared path,
# and only when the share is really mounted here.
#
# SHARED_PATH is assigned above this text by the program; the provisioner sets VOL_DIR.
set -eu

: "${SHARED_PATH:?}" "${VOL_DIR:?}"
marker="$SHARED_PATH/.jupyterhub-platform-share"

case "$VOL_DIR" in
    "$SHARED_PATH"/*/* | "$SHARED_PATH"/.*) echo "refusing to delete $VOL_DIR: not a volume directory under $SHARED_PATH" >&2; exit 1 ;;
    "$SHARED_PATH"/?*) ;;
    *) echo "refusing to delete $VOL_DIR: not under the shared path $SHARED_PATH" >&2; exit 1 ;;
esac

if [ ! -f "$marker" ]; then
    echo "refusing to delete $VOL_DIR: the CephFS share is not mounted at $SHARED_PATH on this node" >&2
    exit 1
fi

rm -rf "$VOL_DIR"
