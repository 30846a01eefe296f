#!/usr/bin/env bash
# Undo mount-cephfs.sh on this node: unmount the share, drop its fstab line, its key
# material (the kernel client's secret file, or ceph-fuse's conf and keyring) and the
# kubelet guard. Files it did not write (a ceph.conf, keyring or secret made by hand)
# stay.
#
# It never deletes anything under the mount path: the share holds every user's home.
# A mount in use (by a process here, or by a container that bind-mounted part of it into
# its own mount namespace) is not unmounted; the step fails and names what holds it, so
# the operator can drain the node first. Afterwards the empty mount point is locked
# (chattr +i), so a pod that still points there fails instead of writing to the node's
# own disk.
#
# It acts only on what its own create step set up: the create step records its owner
# (project/stack/step) beside the key, and when another step has taken the mount over
# (a host renamed in the config: the new step is created before the old one is deleted)
# this changes nothing and says so.
#
# Settings (assigned at the head of the command): NODE_NAME, MOUNT_PATH, CEPH_USER, OWNER.
set -euo pipefail

: "${NODE_NAME:?}" "${MOUNT_PATH:?}" "${CEPH_USER:?}" "${OWNER:?}"

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

[[ $OWNER =~ ^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$ ]] || fail "owner '$OWNER' is not project/stack/name"

readonly OWNER_FILE=$CEPH_DIR/jupyterhub-platform-$CEPH_USER.owner
# A node set up before owners were recorded has no owner file: its mount is this step's.
if [[ -f $OWNER_FILE ]]; then
    owner=$(<"$OWNER_FILE")
    if [[ $owner != "$OWNER" ]]; then
        say "$MOUNT_PATH is owned by $owner, not by $OWNER: nothing changed (mount, fstab line, key material and kubelet guard left as they are)"
        exit 0
    fi
fi

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

# Processes in other mount namespaces (containers: a pod's volume is a bind mount of a
# directory on the share) that use the filesystem mounted here: unmounting here would
# leave them on it, unseen. A bind mount shares its source's device number (the third
# field of mountinfo), whichever client made the mount.
#
# Copies that only propagation put there do not count: systemd gives services with
# PrivateTmp or ProtectSystem (resolved, timesyncd, logind) a namespace whose mounts are
# slaves of the host's, so they see the share at the same path, with the same root, as
# `master:N` of the host mount's peer group N (`shared:N`). The unmount here propagates to
# such a copy, and if something there holds it the unmount fails as busy; counting them
# would make every ordinary systemd node refuse.
users_elsewhere() {
    local line device root peer own proc ns found=() seen=" "
    line=$(awk -v mp="$MOUNT_PATH" '$5 == mp { l = $0 } END { print l }' /proc/self/mountinfo)
    [[ -n $line ]] || return 0
    read -r _ _ device root _ <<<"$line"
    # The peer group, from the optional fields between the seventh field and the "-".
    peer=$(awk '{ for (i = 7; i <= NF && $i != "-"; i++) if ($i ~ /^shared:/) print substr($i, 8) }' <<<"$line")
    own=$(readlink /proc/self/ns/mnt)
    for proc in /proc/[0-9]*; do
        ns=$(readlink "$proc/ns/mnt" 2>/dev/null) || continue
        [[ $ns != "$own" && $seen != *" $ns "* ]] || continue
        if awk -v d="$device" -v r="$root" -v mp="$MOUNT_PATH" -v peer="$peer" '
            $3 != d { next }
            {
                copy = 0
                if (peer != "" && $4 == r && $5 == mp)
                    for (i = 7; i <= NF && $i != "-"; i++) if ($i == "master:" peer) copy = 1
                if (!copy) found = 1
            }
            END { exit !found }' "$proc/mountinfo" 2>/dev/null; then
            seen+="$ns "
            found+=("${proc#/proc/} ($(tr -d '\n' <"$proc/comm" 2>/dev/null || echo '?'))")
        fi
        ((${#found[@]} < 10)) || break
    done
    printf '%s' "${found[*]:-}"
}

fstype=$(findmnt -rn -o FSTYPE --mountpoint "$MOUNT_PATH" 2>/dev/null | tail -n 1 || true)
if [[ -n $fstype ]]; then
    case $fstype in
        ceph | fuse.ceph-fuse | fuse.ceph) ;;
        *) fail "$MOUNT_PATH has a $fstype filesystem mounted, not CephFS: left alone" ;;
    esac
    elsewhere=$(users_elsewhere)
    if [[ -n $elsewhere ]]; then
        fail "$MOUNT_PATH is in use by containers (other mount namespaces): $elsewhere. Drain the node and retry"
    fi
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
    # Its own mode kept (0600 where it holds another mount's credentials).
    chmod "$(stat -c %a "$FSTAB")" "$tmp"
    # On disk before the rename (and the rename after it): a crash must leave the old
    # fstab or the new one, never an empty file.
    sync -- "$tmp"
    mv -f "$tmp" "$FSTAB"
    sync -- "$(dirname "$FSTAB")"
    fstab_state="fstab line removed"
else
    fstab_state="no fstab line"
fi

# Both clients' files: this script is not told which client the node used.
rm -f "$OWNER_FILE" "$CEPH_DIR/jupyterhub-platform-$CEPH_USER.secret" \
    "$CEPH_DIR/jupyterhub-platform-$CEPH_USER.keyring" \
    "$CEPH_DIR/jupyterhub-platform-$CEPH_USER.conf"

# Lock the now unused mount point: a pod left pointing at a volume under it then fails
# to start instead of writing to this node's own disk. Best effort: not every filesystem
# has the immutable attribute.
lock_state="mount point left as is"
if [[ $state == unmounted || $state == "not mounted" ]] && [[ -d $MOUNT_PATH ]] &&
    ! findmnt -rn --mountpoint "$MOUNT_PATH" >/dev/null 2>&1; then
    if chattr +i "$MOUNT_PATH" 2>/dev/null; then
        lock_state="mount point locked against writes (chattr +i)"
    else
        lock_state="mount point could not be locked (no chattr here)"
    fi
fi

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

say "$MOUNT_PATH $state; $fstab_state; key material removed; $lock_state; nothing under $MOUNT_PATH was touched"
