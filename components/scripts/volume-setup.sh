#!/bin/sh
# local-path-provisioner `setup`: make the directory of a new volume on the shared mount.
# Runs after volume-guard.sh, which the program puts ahead of it.
#
# No local user of a node may read users' homes or replace the hub's database: the share's
# volume root is 0700 root (the kubelet bind-mounts each volume into its pod, so pods need
# no way through the parent), and each volume is 0770, owned by the uid and group its pods
# run as. So the SSH user, uid 1000 like the notebook user on many sites, cannot reach it.
#
# USER_UID, USER_GID (singleuser.uid and fsGid), HUB_UID, HUB_GID and HUB_NAMESPACE are
# assigned above by the program; the provisioner sets VOL_DIR.
set -eu

: "${USER_UID:?}" "${USER_GID:?}" "${HUB_UID:?}" "${HUB_GID:?}" "${HUB_NAMESPACE:?}"

# local-path names a volume's folder <pv>_<namespace>_<claim>; the chart's database claim
# is hub-db-dir, in the hub's namespace.
case "${VOL_DIR##*/}" in
    *_"$HUB_NAMESPACE"_hub-db-dir) owner="$HUB_UID:$HUB_GID" ;;
    *) owner="$USER_UID:$USER_GID" ;;
esac

chown 0:0 "$SHARED_PATH"
chmod 0700 "$SHARED_PATH"
# The parent is the share itself, so no -p: a retried claim finds its directory there.
# Made 0700 root first, so it is never open to anyone before its owner is set.
[ -d "$VOL_DIR" ] || mkdir -m 0700 "$VOL_DIR"
chown "$owner" "$VOL_DIR"
chmod 0770 "$VOL_DIR"
