#!/usr/bin/env bash
# Mount the site's CephFS share on this node, and keep it mounted across reboots.
#
# The NodeMounts component runs this over SSH as root (directly, or through `sudo -n`).
# Its settings are shell assignments placed at the head of the command by the program
# (never SSH environment variables: sshd passes only LANG and LC_* by default), and the
# cephx key arrives on stdin, so the key is never on a command line, in an environment,
# or in anything this script prints. Running it again changes nothing.
#
# Settings: NODE_NAME, EXPORT_PATH (mon:port[,mon:port...]:/path, as Manila exports it),
# MOUNT_PATH, CEPH_USER, MOUNT_CLIENT (kernel or fuse), INSTALL_PACKAGES (yes or no).
set -euo pipefail
umask 077

: "${NODE_NAME:?}" "${EXPORT_PATH:?}" "${MOUNT_PATH:?}" "${CEPH_USER:?}"
: "${MOUNT_CLIENT:?}" "${INSTALL_PACKAGES:?}"

readonly CEPH_DIR=/etc/ceph
readonly FSTAB=/etc/fstab
readonly MARKER_NAME=.jupyterhub-platform-share
readonly DROPIN_NAME=50-jupyterhub-platform-share.conf
# Bound every wait on the cluster, so an unreachable cluster fails the step instead of
# hanging `pulumi up`.
readonly MOUNT_TIMEOUT=60

say() { printf 'cephfs-mount[%s]: %s\n' "$NODE_NAME" "$*"; }
fail() {
    printf 'cephfs-mount[%s]: error: %s\n' "$NODE_NAME" "$*" >&2
    exit 1
}

# The program validated these already; check again because they end up in fstab,
# in file names and in commands run as root.
[[ $NODE_NAME =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || fail "bad node name"
[[ $MOUNT_PATH =~ ^(/[A-Za-z0-9_][A-Za-z0-9._-]*)+$ && $MOUNT_PATH != */. && $MOUNT_PATH != */.. ]] ||
    fail "mount path '$MOUNT_PATH' is not a plain absolute path"
[[ $CEPH_USER =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || fail "cephx user '$CEPH_USER' is not valid"
monitor='([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):[0-9]+'
[[ $EXPORT_PATH =~ ^$monitor(,$monitor)*:(/[A-Za-z0-9_][A-Za-z0-9._-]*)+$ ]] ||
    fail "export path '$EXPORT_PATH' is not of the form mon:port[,mon:port...]:/path"
[[ $MOUNT_CLIENT == kernel || $MOUNT_CLIENT == fuse ]] || fail "mount client must be kernel or fuse"
[[ $INSTALL_PACKAGES == yes || $INSTALL_PACKAGES == no ]] || fail "INSTALL_PACKAGES must be yes or no"

readonly MONITORS=${EXPORT_PATH%%:/*}
readonly SHARE_PATH=/${EXPORT_PATH#*:/}
readonly SECRET_FILE=$CEPH_DIR/ceph.client.$CEPH_USER.secret
readonly FUSE_CONF=$CEPH_DIR/jupyterhub-platform-$CEPH_USER.conf
readonly FUSE_KEYRING=$CEPH_DIR/ceph.client.$CEPH_USER.keyring

KEY=
IFS= read -r KEY || true
[[ $KEY =~ ^[A-Za-z0-9+/]{16,}={0,2}$ ]] || fail "stdin does not hold a cephx key"

# Replace a file only when its content differs, atomically, with the given mode.
put_file() {
    local path=$1 mode=$2 content=$3 tmp
    if [[ -f $path ]] && [[ "$(<"$path")" == "$content" ]]; then
        chmod "$mode" "$path"
        return 1
    fi
    tmp=$(mktemp "$(dirname "$path")/.jupyterhub-platform.XXXXXX")
    printf '%s\n' "$content" >"$tmp"
    chmod "$mode" "$tmp"
    mv -f "$tmp" "$path"
}

ensure_command() {
    local cmd=$1 package=$2
    command -v "$cmd" >/dev/null 2>&1 && return 0
    [[ $INSTALL_PACKAGES == yes ]] ||
        fail "$cmd is missing and nodes.installPackages is false: install $package on this node"
    if command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q "$package" >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "$package" >/dev/null; } ||
            fail "apt-get could not install $package"
    elif command -v dnf >/dev/null 2>&1; then
        dnf install -y -q "$package" >/dev/null || fail "dnf could not install $package"
    else
        fail "$cmd is missing and neither apt-get nor dnf is available to install $package"
    fi
    command -v "$cmd" >/dev/null 2>&1 || fail "$package is installed but $cmd is still missing"
}

# What is mounted at MOUNT_PATH, as "FSTYPE SOURCE", or nothing.
mounted_here() {
    findmnt -rn -o FSTYPE,SOURCE --mountpoint "$MOUNT_PATH" 2>/dev/null | head -n 1 || true
}

# Is the mount at MOUNT_PATH this share? The kernel client shows the export as its
# source (old or new mount syntax); ceph-fuse shows only "ceph-fuse", so for it the
# share's own root is compared through its ceph.* attributes when they are readable.
is_this_share() {
    local fstype=$1 source=$2
    case $fstype in
        ceph) [[ $source == *":$SHARE_PATH" || $source == *"=$SHARE_PATH" ]] ;;
        fuse.ceph-fuse | fuse.ceph) [[ $MOUNT_CLIENT == fuse ]] ;;
        *) return 1 ;;
    esac
}

# fstab without any line for MOUNT_PATH, plus the managed line.
fstab_with_line() {
    local line=$1
    if [[ -f $FSTAB ]]; then
        awk -v mp="$MOUNT_PATH" '$0 ~ /^[[:space:]]*#/ || NF < 2 || $2 != mp' "$FSTAB"
    fi
    printf '%s\n' "$line"
}

# --- client and credentials -------------------------------------------------------
install -d -m 0755 "$CEPH_DIR"
if [[ $MOUNT_CLIENT == kernel ]]; then
    ensure_command mount.ceph ceph-common
    put_file "$SECRET_FILE" 0600 "$KEY" || true
    options="name=$CEPH_USER,secretfile=$SECRET_FILE,noatime,_netdev,nofail"
    fstab_line="$EXPORT_PATH $MOUNT_PATH ceph $options 0 0"
else
    ensure_command ceph-fuse ceph-fuse
    put_file "$FUSE_KEYRING" 0600 "$(printf '[client.%s]\n\tkey = %s' "$CEPH_USER" "$KEY")" || true
    put_file "$FUSE_CONF" 0644 "$(printf '[global]\n\tmon host = %s\n\tclient mount timeout = %s' \
        "${MONITORS//,/ }" "$MOUNT_TIMEOUT")" || true
    options="ceph.id=$CEPH_USER,ceph.client_mountpoint=$SHARE_PATH,ceph.conf=$FUSE_CONF"
    options+=",ceph.keyring=$FUSE_KEYRING,_netdev,nofail,defaults"
    fstab_line="none $MOUNT_PATH fuse.ceph $options 0 0"
fi

# --- mount ------------------------------------------------------------------------
new_fstab=$(fstab_with_line "$fstab_line")
read -r fstype source <<<"$(mounted_here)" || true
if [[ -n ${fstype:-} ]]; then
    # Already mounted (by an earlier run, or by hand before this program took over):
    # keep it. Unmounting a share that users are using would break their servers.
    is_this_share "$fstype" "$source" ||
        fail "$MOUNT_PATH already has $fstype $source mounted, not the share $SHARE_PATH"
    state="already mounted"
else
    mkdir -p "$MOUNT_PATH"
    # Mount through the new fstab before it replaces the real one, so a failed mount
    # leaves fstab exactly as it was.
    candidate=$(mktemp /tmp/jupyterhub-platform-fstab.XXXXXX)
    trap 'rm -f "$candidate"' EXIT
    printf '%s\n' "$new_fstab" >"$candidate"
    if ! out=$(timeout "$MOUNT_TIMEOUT" mount --fstab "$candidate" "$MOUNT_PATH" 2>&1); then
        fail "mounting $SHARE_PATH from $MONITORS at $MOUNT_PATH failed: ${out:-timed out}"
    fi
    read -r fstype source <<<"$(mounted_here)" || true
    is_this_share "${fstype:-}" "${source:-}" ||
        fail "after mounting, $MOUNT_PATH shows '${fstype:-nothing} ${source:-}', not the share"
    state="mounted"
fi

if put_file "$FSTAB" 0644 "$new_fstab"; then
    fstab_state="fstab updated"
else
    fstab_state="fstab unchanged"
fi

# A marker on the share itself: the provisioner refuses to create volumes where it is
# missing, which is what a node sees when the share is not mounted there.
put_file "$MOUNT_PATH/$MARKER_NAME" 0644 "$SHARE_PATH" || true

# --- keep the kubelet off this node until the share is mounted ------------------
guarded=()
reload=no
dropin=$(printf '%s\n%s\n%s' "[Unit]" \
    "# jupyterhub-platform: start only once the shared CephFS is mounted." \
    "RequiresMountsFor=$MOUNT_PATH")
for unit in k3s k3s-agent; do
    for dir in /etc/systemd/system /lib/systemd/system /usr/lib/systemd/system; do
        if [[ -f $dir/$unit.service ]]; then
            install -d -m 0755 "/etc/systemd/system/$unit.service.d"
            if put_file "/etc/systemd/system/$unit.service.d/$DROPIN_NAME" 0644 "$dropin"; then
                reload=yes
            fi
            guarded+=("$unit")
            break
        fi
    done
done
if [[ $reload == yes ]]; then
    systemctl daemon-reload
fi
if ((${#guarded[@]} == 0)); then
    printf 'cephfs-mount[%s]: warning: no k3s or k3s-agent unit found; nothing keeps pods off this node when the share is not mounted\n' \
        "$NODE_NAME" >&2
fi

say "$MOUNT_PATH $state ($MOUNT_CLIENT client, $SHARE_PATH from $MONITORS); $fstab_state; kubelet guard: ${guarded[*]:-none}"
