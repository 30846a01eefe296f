#!/usr/bin/env bash
# Undo mount-cephfs.sh on this node: unmount the share, drop its fstab line, its key
# material (the kernel client's secret file, or ceph-fuse's conf and keyring) and the
# kubelet guard. Files it did not write (a ceph.conf or keyring made by hand) stay.
#
# It never deletes anything under the mount path: the share holds every user's home.
# A busy mount is not lazily unmounted; the step fails and names what holds it, so the
# operator can drain the node first.
#
# Settings (assigned at the head of the command): NODE_NAME, MOUNT_PATH, CEPH_USER.
set -euo pipefail

: "${NODE_NAME:?}" "${MOUNT_PATH:?}" "${CEPH_USER:?}"

readonly CEPH_DIR=/etc/ceph
readonly FSTAB=/etc/fstab
readonly DROPIN_NAME=50-jupyterhub-platform-share.conf

say() { printf 'cephfs-unmount[%s]: %s\n' "$NODE_NAME" "$*"; }
fail() {
    printf 'cephfs-unmount[%s]: error: %s\n' "$NODE_NAME" "$*" >&2
    exit 1
}

[[ $MOUNT_PATH =~ ^(/[A-Za-z0-9_][A-Za-z0-9._-]*)+$ ]] || fail "mount path '$MOUNT_PATH' is not plain"
[[ $CEPH_USER =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || fail "cephx user '$CEPH_USER' is not valid"

# Processes whose working directory, root or open files are under MOUNT_PATH.
holders() {
    local proc link pid found=()
    for proc in /proc/[0-9]*; do
        pid=${proc#/proc/}
        for link in "$proc/cwd" "$proc/root" "$proc"/fd/*; do
            target=$(readlink "$link" 2>/dev/null) || continue
            if [[ $target == "$MOUNT_PATH" || $target == "$MOUNT_PATH"/* ]]; then
                found+=("$pid ($(tr -d '\n' <"$proc/comm" 2>/dev/null || echo '?'))")
                break
            fi
        done
        ((${#found[@]} < 10)) || break
    done
    printf '%s' "${found[*]:-none found}"
}

if findmnt -rn --mountpoint "$MOUNT_PATH" >/dev/null 2>&1; then
    if ! out=$(umount "$MOUNT_PATH" 2>&1); then
        fail "cannot unmount $MOUNT_PATH (${out}); held by: $(holders). Stop these (drain the node) and retry"
    fi
    state="unmounted"
else
    state="not mounted"
fi

# A line for MOUNT_PATH however it is spelled (a hand-written one may end with a slash);
# the create script replaced any such line with its own.
# fstab's lines for MOUNT_PATH ("ours") or all the others ("others").
fstab_lines() {
    awk -v mp="$MOUNT_PATH" -v want="$1" '{
        t = $2; sub(/\/+$/, "", t)
        ours = $0 !~ /^[[:space:]]*#/ && NF >= 2 && t == mp
        if (ours == (want == "ours")) print
    }' "$FSTAB"
}
if [[ -f $FSTAB && -n $(fstab_lines ours) ]]; then
    tmp=$(mktemp "$(dirname "$FSTAB")/.jupyterhub-platform.XXXXXX")
    fstab_lines others >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$FSTAB"
    fstab_state="fstab line removed"
else
    fstab_state="no fstab line"
fi

# Both clients' files: this script is not told which client the node used.
rm -f "$CEPH_DIR/ceph.client.$CEPH_USER.secret" \
    "$CEPH_DIR/jupyterhub-platform-$CEPH_USER.keyring" \
    "$CEPH_DIR/jupyterhub-platform-$CEPH_USER.conf"

reload=no
for unit in k3s k3s-agent; do
    if [[ -f /etc/systemd/system/$unit.service.d/$DROPIN_NAME ]]; then
        rm -f "/etc/systemd/system/$unit.service.d/$DROPIN_NAME"
        reload=yes
    fi
done
if [[ $reload == yes ]]; then
    systemctl daemon-reload
fi

say "$MOUNT_PATH $state; $fstab_state; key material removed; nothing under $MOUNT_PATH was touched"
