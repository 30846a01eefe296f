#!/usr/bin/env bash
# Check, without changing anything, that this node has the share as mount-cephfs.sh
# leaves it: mounted at MOUNT_PATH from the expected export, its key file 0600, its fstab
# line, and the drop-in that keeps k3s from starting before the mount.
#
# `sitectl verify` runs this over SSH as root (directly, or through `sudo -n`), with its
# settings at the head like the mount script's. It prints one line per finding, `ok: ...`
# or `fail <kind>: ...`, and exits 1 when any finding failed. It reads no key material:
# only the key file's mode and owner.
#
# Settings: NODE_NAME, EXPORT_PATH, MOUNT_PATH, CEPH_USER, MOUNT_CLIENT (kernel or fuse).
set -euo pipefail

: "${NODE_NAME:?}" "${EXPORT_PATH:?}" "${MOUNT_PATH:?}" "${CEPH_USER:?}" "${MOUNT_CLIENT:?}"

readonly FSTAB=/etc/fstab
readonly MARKER_NAME=.jupyterhub-platform-share
readonly DROPIN_NAME=50-jupyterhub-platform-share.conf
readonly SHARE_PATH=/${EXPORT_PATH#*:/}
if [[ $MOUNT_CLIENT == kernel ]]; then
    readonly KEY_FILE=/etc/ceph/jupyterhub-platform-$CEPH_USER.secret
else
    readonly KEY_FILE=/etc/ceph/jupyterhub-platform-$CEPH_USER.keyring
fi

failed=0
ok() { printf 'ok: %s\n' "$*"; }
fail() {
    local kind=$1
    shift
    printf 'fail %s: %s\n' "$kind" "$*"
    failed=1
}

# --- the mount ---------------------------------------------------------------------
fstype='' source=''
read -r fstype source <<<"$(findmnt -rn -o FSTYPE,SOURCE --mountpoint "$MOUNT_PATH" 2>/dev/null | tail -n 1)" || true
case $fstype in
    '') fail unmounted "nothing is mounted at $MOUNT_PATH" ;;
    ceph)
        if [[ $source == *":$SHARE_PATH" || $source == *"=$SHARE_PATH" ]]; then
            ok "$MOUNT_PATH: $source (kernel client)"
        else
            fail wrong-share "$MOUNT_PATH has $source mounted, not $SHARE_PATH"
        fi
        ;;
    fuse.ceph-fuse | fuse.ceph)
        # ceph-fuse shows no source; the marker the mount script leaves on the share
        # names it. The read is bounded: a hung mount must not hang the check.
        marker=$(timeout 10 cat "$MOUNT_PATH/$MARKER_NAME" 2>/dev/null) || true
        if [[ $marker == "$SHARE_PATH" ]]; then
            ok "$MOUNT_PATH: $SHARE_PATH (ceph-fuse)"
        elif [[ -z $marker ]]; then
            fail wrong-share "$MOUNT_PATH has a ceph-fuse mount without the share's marker $MARKER_NAME (a dead ceph-fuse, or another share)"
        else
            fail wrong-share "$MOUNT_PATH has the share $marker mounted, not $SHARE_PATH"
        fi
        ;;
    *) fail wrong-share "$MOUNT_PATH has $fstype $source mounted, not the CephFS share" ;;
esac

# --- the key file ------------------------------------------------------------------
if [[ -f $KEY_FILE ]]; then
    mode=$(stat -c '%a %U' "$KEY_FILE")
    if [[ $mode == "600 root" ]]; then
        ok "$KEY_FILE: mode 0600, owner root"
    else
        fail key-mode "$KEY_FILE has mode/owner '$mode', not '600 root': anyone on the node can read the cephx key"
    fi
else
    fail key-missing "$KEY_FILE is missing: the next boot cannot mount the share"
fi

# --- fstab -------------------------------------------------------------------------
line=''
if [[ -f $FSTAB ]]; then
    line=$(awk -v mp="$MOUNT_PATH" '$0 !~ /^[[:space:]]*#/ && NF >= 4 { t = $2; sub(/\/+$/, "", t); if (t == mp) print }' "$FSTAB" | tail -n 1)
fi
read -r f_source _ f_type f_options _ <<<"$line" || true
problems=()
if [[ -z $line ]]; then
    problems+=("no line for $MOUNT_PATH")
elif [[ $MOUNT_CLIENT == kernel ]]; then
    [[ $f_type == ceph ]] || problems+=("type '$f_type', not ceph")
    [[ $f_source == "$EXPORT_PATH" ]] || problems+=("source '$f_source', not $EXPORT_PATH")
    [[ ,$f_options, == *",name=$CEPH_USER,"* ]] || problems+=("no name=$CEPH_USER")
    [[ ,$f_options, == *",secretfile=$KEY_FILE,"* ]] || problems+=("no secretfile=$KEY_FILE")
else
    [[ $f_type == fuse.ceph ]] || problems+=("type '$f_type', not fuse.ceph")
    [[ ,$f_options, == *",ceph.id=$CEPH_USER,"* ]] || problems+=("no ceph.id=$CEPH_USER")
    [[ ,$f_options, == *",ceph.client_mountpoint=$SHARE_PATH,"* ]] ||
        problems+=("no ceph.client_mountpoint=$SHARE_PATH")
    [[ ,$f_options, == *",ceph.keyring=$KEY_FILE,"* ]] || problems+=("no ceph.keyring=$KEY_FILE")
fi
if [[ -n $line ]]; then
    [[ ,$f_options, == *",nofail,"* ]] || problems+=("no nofail (a boot without Ceph would stop)")
fi
if ((${#problems[@]} == 0)); then
    ok "fstab: $f_type line for $MOUNT_PATH"
else
    fail fstab "fstab: $(
        IFS=';'
        printf '%s' "${problems[*]}"
    )"
fi

# --- the k3s guard -----------------------------------------------------------------
units=()
for unit in k3s k3s-agent; do
    for dir in /etc/systemd/system /lib/systemd/system /usr/lib/systemd/system; do
        if [[ -f $dir/$unit.service ]]; then
            units+=("$unit")
            break
        fi
    done
done
if ((${#units[@]} == 0)); then
    fail guard "no k3s or k3s-agent unit on this node: nothing keeps pods off it when the share is not mounted"
fi
for unit in "${units[@]}"; do
    dropin=/etc/systemd/system/$unit.service.d/$DROPIN_NAME
    if [[ -f $dropin ]] && grep -qx "RequiresMountsFor=$MOUNT_PATH" "$dropin"; then
        ok "$unit waits for $MOUNT_PATH ($dropin)"
    else
        fail guard "$dropin does not hold RequiresMountsFor=$MOUNT_PATH: $unit may start before the share is mounted"
    fi
done
exit "$failed"
