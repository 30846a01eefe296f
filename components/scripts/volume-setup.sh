#!/bin/sh
# local-path-provisioner `setup`: make the directory of a new volume on the shared mount.
# Runs after volume-guard.sh, which the program puts ahead of it.
#
# No local user of a node may read users' homes or replace the hub's database: the share's
# volume root is 0700 root (the kubelet bind-mounts each volume into its pod, so pods need
# no way through the parent), and each volume is 0770, owned by the uid and group its pods
# run as. So the SSH user, uid 1000 like the notebook user on many sites, cannot reach it.
#
# With ENFORCE_CAPACITY=yes each volume gets a CephFS quota (ceph.quota.max_bytes) of its
# claim's size, VOL_SIZE_BYTES, before anyone may use it; a volume whose quota cannot be
# set is refused, never handed out without one. The hub database's volume gets its claim's
# size too (hub.db.pvc.storage, 1Gi by default): a hub's SQLite file stays in the tens of
# megabytes even with thousands of users, so the quota is reached only by something gone
# wrong, and then SQLite fails the write and rolls back instead of the share filling up.
#
# USER_UID, USER_GID (singleuser.uid and fsGid), HUB_UID, HUB_GID, HUB_NAMESPACE and
# ENFORCE_CAPACITY are assigned above by the program; the provisioner sets VOL_DIR and
# VOL_SIZE_BYTES.
set -eu

: "${USER_UID:?}" "${USER_GID:?}" "${HUB_UID:?}" "${HUB_GID:?}" "${HUB_NAMESPACE:?}"
: "${ENFORCE_CAPACITY:?}"

refuse() {
    echo "refusing to create volume $VOL_DIR: $*" >&2
    exit 1
}

# local-path names a volume's folder <pv>_<namespace>_<claim>; the chart's database claim
# is hub-db-dir, in the hub's namespace.
case "${VOL_DIR##*/}" in
    *_"$HUB_NAMESPACE"_hub-db-dir) owner="$HUB_UID:$HUB_GID" ;;
    *) owner="$USER_UID:$USER_GID" ;;
esac

if [ "$ENFORCE_CAPACITY" = yes ]; then
    case "${VOL_SIZE_BYTES:-}" in
        "" | *[!0-9]* | 0) refuse "its size VOL_SIZE_BYTES '${VOL_SIZE_BYTES:-}' is not a number of bytes" ;;
    esac
    command -v setfattr >/dev/null 2>&1 ||
        refuse "the helper image has no setfattr, which storage.enforceCapacity needs: set" \
            "storage.helperImage to one that has it (busybox 1.28 or later, as built by default)"
fi

chown 0:0 "$SHARED_PATH"
chmod 0700 "$SHARED_PATH"
# The parent is the share itself, so no -p: a retried claim finds its directory there.
# Made 0700 root first, so it is open to no one before its quota and owner are set.
created=
if [ ! -d "$VOL_DIR" ]; then
    mkdir -m 0700 "$VOL_DIR"
    created=yes
fi
if [ "$ENFORCE_CAPACITY" = yes ] &&
    ! out=$(setfattr -n ceph.quota.max_bytes -v "$VOL_SIZE_BYTES" "$VOL_DIR" 2>&1); then
    [ -z "$created" ] || rmdir "$VOL_DIR" 2>/dev/null || true
    refuse "cannot set its CephFS quota to $VOL_SIZE_BYTES bytes ($out): the cephx user" \
        "needs the p flag in its MDS cap for storage.enforceCapacity"
fi
chown "$owner" "$VOL_DIR"
chmod 0770 "$VOL_DIR"
