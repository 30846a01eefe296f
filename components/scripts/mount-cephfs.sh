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
# MOUNT_PATH, CEPH_USER, MOUNT_CLIENT (kernel or fuse), INSTALL_PACKAGES (yes or no), OWNER
# (project/stack/step: recorded on the node, so that only this step's delete undoes it),
# ENFORCE_CAPACITY (yes: check that the client may set CephFS quotas, see below).
set -euo pipefail
umask 077

: "${NODE_NAME:?}" "${EXPORT_PATH:?}" "${MOUNT_PATH:?}" "${CEPH_USER:?}"
: "${MOUNT_CLIENT:?}" "${INSTALL_PACKAGES:?}" "${OWNER:?}" "${ENFORCE_CAPACITY:?}"

readonly CEPH_DIR=/etc/ceph
readonly FSTAB=/etc/fstab
readonly MARKER_NAME=.jupyterhub-platform-share
readonly DROPIN_NAME=50-jupyterhub-platform-share.conf
# How long this run's mount may wait for the cluster, set as the client's own limit
# (the kernel's mount_timeout, ceph-fuse's client_mount_timeout) so that an unreachable
# cluster fails the step with the client's error ("Connection timed out") instead of
# hanging `pulumi up`. A healthy cluster answers in well under a second and a monitor
# election takes a few seconds, so 20 s only gives up on a cluster really out of reach.
# It is on this run's mount line only, not in fstab: see BOOT_MOUNT_TIMEOUT.
readonly MOUNT_TIMEOUT=20
# The hard bound on the whole mount command, for whatever the clients' limits miss.
readonly MOUNT_DEADLINE=50
# What a boot or a `mount -a` waits: longer, since the whole site may be coming back at
# once, yet under systemd's 90 s for a mount unit, so the journal shows the client's own
# error rather than a killed job. The kernel client's default is 60 s; ceph-fuse's (300 s)
# is lowered to this in its conf.
readonly BOOT_MOUNT_TIMEOUT=75

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
monitor='([A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:]+\]):[0-9]+'
[[ ${#EXPORT_PATH} -le 1024 && $EXPORT_PATH =~ ^$monitor(,$monitor)*:(/[A-Za-z0-9_][A-Za-z0-9._-]*)+$ ]] ||
    fail "export path '$EXPORT_PATH' is not of the form mon:port[,mon:port...]:/path"
[[ $MOUNT_CLIENT == kernel || $MOUNT_CLIENT == fuse ]] || fail "mount client must be kernel or fuse"
[[ $INSTALL_PACKAGES == yes || $INSTALL_PACKAGES == no ]] || fail "INSTALL_PACKAGES must be yes or no"
[[ $ENFORCE_CAPACITY == yes || $ENFORCE_CAPACITY == no ]] || fail "ENFORCE_CAPACITY must be yes or no"
[[ $OWNER =~ ^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$ ]] || fail "owner '$OWNER' is not project/stack/name"

readonly MONITORS=${EXPORT_PATH%%:/*}
readonly SHARE_PATH=/${EXPORT_PATH#*:/}
# Key material carries this program's name, so it never overwrites (nor does the unmount
# script delete) a ceph.conf, keyring or secret file written by hand or by other tools.
readonly SECRET_FILE=$CEPH_DIR/jupyterhub-platform-$CEPH_USER.secret
# For ceph-fuse: ceph-fuse names its cluster after its conf file, and $cluster.keyring is on its
# default keyring path: the keyring is found even by a ceph-fuse run by hand with
# --conf only (the conf and the fstab line name it as well).
readonly FUSE_CLUSTER=jupyterhub-platform-$CEPH_USER
readonly FUSE_CONF=$CEPH_DIR/$FUSE_CLUSTER.conf
readonly FUSE_KEYRING=$CEPH_DIR/$FUSE_CLUSTER.keyring
# Which deploy step owns the mount, beside its key: a host renamed in the config is a new
# step that finds the share mounted and takes it over, and the old step's delete, which
# the engine runs afterwards on the same machine, must then leave it alone.
readonly OWNER_FILE=$CEPH_DIR/jupyterhub-platform-$CEPH_USER.owner

KEY=
IFS= read -r KEY || true
# A cephx secret is the base64 of: type (2 bytes), creation time (8), length (2, little
# endian), then that many bytes of key. Anything else is refused here: ceph-fuse given a
# key it cannot decode prints it in its error and then hangs instead of exiting.
cephx_key_ok() {
    local decoded bytes
    decoded=$(printf '%s' "$KEY" | base64 -d 2>/dev/null | od -An -v -tu1 -w1) || return 1
    mapfile -t bytes <<<"$decoded"
    ((${#bytes[@]} > 12 && ${#bytes[@]} == 12 + bytes[10] + 256 * bytes[11]))
}
if ! [[ $KEY =~ ^[A-Za-z0-9+/]{16,}={0,2}$ ]] || ! cephx_key_ok; then
    fail "stdin does not hold a cephx key"
fi

# Ceph echoes a key it cannot parse in its error messages: never pass its output on as is.
scrub() { printf '%s' "${1//"$KEY"/<cephx key>}"; }

# Until the share is mounted, a failed run puts the node back as it found it: it removes
# what it created (key files, the mount point), listed in `undo`, and puts back the files
# it replaced, listed in `restore` as path/backup pairs. A wrong key must not replace a
# working one: the next boot's mount and a recovery by hand use that file.
undo=()
restore=()
candidate=
relock=no
# Forget the backups: from here on this run's files stay.
keep_changes() {
    local i
    for ((i = 1; i < ${#restore[@]}; i += 2)); do
        rm -f "${restore[i]}"
    done
    undo=()
    restore=()
    relock=no
}
on_exit() {
    local status=$? path i
    [[ -z $candidate ]] || rm -f "$candidate"
    if ((status != 0)); then
        # The mount point was locked against writes by an earlier unmount: keep it so.
        [[ $relock == no ]] || chattr +i "$MOUNT_PATH" 2>/dev/null || true
        for ((i = 0; i < ${#restore[@]}; i += 2)); do
            mv -f "${restore[i + 1]}" "${restore[i]}" || true
        done
        for path in "${undo[@]}"; do
            if [[ -d $path ]]; then
                rmdir "$path" 2>/dev/null || true
            else
                rm -f "$path"
            fi
        done
    else
        keep_changes
    fi
}
trap on_exit EXIT

mode_of() { stat -c %a "$1"; }

# Replace a file only when its content or mode differs, atomically, with the given mode;
# the file it replaces stays as a backup (a hard link to it) until the run ends. Returns 1
# when the file already held exactly that content with that mode.
put_file() {
    local path=$1 mode=$2 content=$3 tmp backup
    if [[ -f $path ]] && [[ "$(<"$path")" == "$content" ]] &&
        (("8#$(mode_of "$path")" == "8#$mode")); then
        return 1
    fi
    if [[ -e $path ]]; then
        backup=$(mktemp "$(dirname "$path")/.jupyterhub-platform-backup.XXXXXX")
        ln -f "$path" "$backup"
        restore+=("$path" "$backup")
    else
        undo+=("$path")
    fi
    tmp=$(mktemp "$(dirname "$path")/.jupyterhub-platform.XXXXXX")
    printf '%s\n' "$content" >"$tmp"
    chmod "$mode" "$tmp"
    # On disk before the rename, and the rename on disk after it: a crash in between
    # must leave the old file or the new one, never an empty fstab or key file.
    sync -- "$tmp"
    mv -f "$tmp" "$path"
    sync -- "$(dirname "$path")"
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

# What is mounted at MOUNT_PATH, as "FSTYPE SOURCE", or nothing. With mounts stacked
# there, the last one is the one in use.
mounted_here() {
    findmnt -rn -o FSTYPE,SOURCE --mountpoint "$MOUNT_PATH" 2>/dev/null | tail -n 1 || true
}

# The CephFS path that the ceph-fuse process serving MOUNT_PATH mounted, from its command
# line (`--client_mountpoint=P`, as mount.fuse.ceph passes it, or `-r P` by hand), or
# nothing. Only processes in this mount namespace count: one in a container, or another
# node sharing this pid namespace, may serve the same path somewhere else.
fuse_root() {
    local ns proc comm args arg i serves root
    ns=$(readlink /proc/self/ns/mnt) || return 0
    for proc in /proc/[0-9]*; do
        comm=
        read -r comm 2>/dev/null <"$proc/comm" || continue
        [[ $comm == ceph-fuse ]] || continue
        [[ $(readlink "$proc/ns/mnt" 2>/dev/null) == "$ns" ]] || continue
        mapfile -d '' -t args 2>/dev/null <"$proc/cmdline" || continue
        serves=no root=
        for ((i = 1; i < ${#args[@]}; i++)); do
            arg=${args[i]}
            case $arg in
                --client_mountpoint=* | --client-mountpoint=*) root=${arg#*=} ;;
                --client_mountpoint | --client-mountpoint | -r)
                    root=${args[i + 1]:-}
                    i=$((i + 1))
                    ;;
                -*) ;;
                *) [[ ${arg%/} != "$MOUNT_PATH" ]] || serves=yes ;;
            esac
        done
        if [[ $serves == yes && -n $root ]]; then
            root=${root%/}
            printf '%s' "${root:-/}"
            return 0
        fi
    done
}

# Is the mount at MOUNT_PATH ("FSTYPE SOURCE") this share: yes, no, or unknown. The
# kernel client shows the export as its source (old or new mount syntax); ceph-fuse shows
# only "ceph-fuse", so its process is asked, and failing that the marker this script
# leaves on the share. Which client made the mount does not matter: a share mounted by
# hand with the other client is still the share, and is kept.
identify() {
    local fstype=$1 source=$2 root marker
    case $fstype in
        ceph)
            if [[ $source == *":$SHARE_PATH" || $source == *"=$SHARE_PATH" ]]; then
                echo yes
            else
                echo no
            fi
            ;;
        fuse.ceph-fuse | fuse.ceph)
            root=$(fuse_root)
            if [[ -n $root ]]; then
                if [[ $root == "$SHARE_PATH" ]]; then echo yes; else echo no; fi
                return 0
            fi
            # A hung mount must not hang the step: the read is bounded.
            marker=$(timeout 10 cat "$MOUNT_PATH/$MARKER_NAME" 2>/dev/null) || true
            if [[ $marker == "$SHARE_PATH" ]]; then echo yes; else echo unknown; fi
            ;;
        *) echo no ;;
    esac
}

# fstab without any line for MOUNT_PATH (however it is spelled: a hand-written line may
# end it with a slash), plus the managed line.
fstab_with_line() {
    local line=$1
    if [[ -f $FSTAB ]]; then
        awk -v mp="$MOUNT_PATH" '{ t = $2; sub(/\/+$/, "", t) } $0 ~ /^[[:space:]]*#/ || NF < 2 || t != mp' "$FSTAB"
    fi
    printf '%s\n' "$line"
}

# What to add to a failed mount's own message, from the errno the client reported.
mount_hint() {
    case $1 in
        *"Permission denied"* | *"(13)"* | *"Operation not permitted"* | *"(1)"*)
            echo "the cluster refused client.$CEPH_USER: is stdin the key of the share's access rule, and is it allowed $SHARE_PATH?"
            ;;
        *"timed out"* | *"(110)"* | *"(111)"* | *"Connection refused"*)
            echo "no monitor of $MONITORS answered within $MOUNT_TIMEOUT s: check that this node can reach them"
            ;;
    esac
}

# Whether this client may set CephFS quotas, tried once on a scratch directory of the share
# that it removes again; prints why not. Setting ceph.quota.max_bytes needs the `p` flag in
# the client's MDS cap, which Manila's access rule does not grant: without it the MDS
# answers "Permission denied", and every volume would be made without its quota.
quota_probe() {
    local probe out status=0 value=
    probe=$(mktemp -d "$MOUNT_PATH/.jupyterhub-platform-quota-probe.XXXXXX" 2>&1) || {
        printf 'cannot make a scratch directory: %s' "$probe"
        return 1
    }
    out=$(setfattr -n ceph.quota.max_bytes -v 1048576 "$probe" 2>&1) || status=$?
    if ((status == 0)); then
        value=$(getfattr --only-values -n ceph.quota.max_bytes "$probe" 2>/dev/null) || true
    fi
    rmdir "$probe" 2>/dev/null || true
    if ((status != 0)); then
        printf 'setfattr ceph.quota.max_bytes: %s' "${out##*: }"
        return 1
    fi
    [[ $value == 1048576 ]] || {
        printf 'the quota set reads back as "%s"' "$value"
        return 1
    }
}

# --- where to mount -----------------------------------------------------------------
# The program validated the path as text; only the node knows what it is. A mount path
# that is (or runs through) a symlink would put the share somewhere else, and `find`
# below does not follow its starting point, so files hidden there would go unseen.
case $MOUNT_PATH in
    /tmp | /tmp/* | /var/tmp | /var/tmp/*)
        fail "mount path $MOUNT_PATH is under /tmp or /var/tmp, which are cleaned at boot and" \
            "writable by every user: use a directory of its own such as /mnt/k8s-shared"
        ;;
esac
real_path=$(realpath -m -- "$MOUNT_PATH")
[[ $real_path == "$MOUNT_PATH" ]] ||
    fail "mount path $MOUNT_PATH is not its own real path on this node (it resolves to" \
        "$real_path through a symlink): use the real directory as nodes.mountPath"

# --- nothing to hide ----------------------------------------------------------------
# Mounting over files would hide them: on a node whose boot mount failed they are writes
# that missed the share, and on a mistyped path they are the node's own. Checked before
# anything on the node changes, so a refusal leaves it as it was.
if [[ -d $MOUNT_PATH && -z $(mounted_here) ]]; then
    first=$(find "$MOUNT_PATH" -mindepth 1 -maxdepth 1 -print -quit)
    [[ -z $first ]] ||
        fail "$MOUNT_PATH is not empty on this node's own disk (it holds '${first##*/}'):" \
            "mounting the share over it would hide that; move its contents away and run again"
fi

# --- client and credentials -------------------------------------------------------
# Made when missing, never opened up: an administrator may have closed it (0750) over
# keyrings written world-readable by hand.
[[ -d $CEPH_DIR ]] || install -d -m 0755 "$CEPH_DIR"
if [[ $ENFORCE_CAPACITY == yes ]]; then
    ensure_command setfattr attr
    ensure_command getfattr attr
fi
if [[ $MOUNT_CLIENT == kernel ]]; then
    ensure_command mount.ceph ceph-common
    put_file "$SECRET_FILE" 0600 "$KEY" || true
    options="name=$CEPH_USER,secretfile=$SECRET_FILE,noatime,_netdev,nofail"
    fstab_line="$EXPORT_PATH $MOUNT_PATH ceph $options 0 0"
    mount_line="$EXPORT_PATH $MOUNT_PATH ceph $options,mount_timeout=$MOUNT_TIMEOUT 0 0"
else
    ensure_command ceph-fuse ceph-fuse
    # mount(8) runs this helper for fstab's fuse.ceph type; it ships with ceph-fuse.
    ensure_command mount.fuse.ceph ceph-fuse
    [[ -c /dev/fuse ]] || fail "/dev/fuse is missing: load the fuse kernel module (modprobe fuse)"
    put_file "$FUSE_KEYRING" 0600 "$(printf '[client.%s]\n\tkey = %s' "$CEPH_USER" "$KEY")" || true
    put_file "$FUSE_CONF" 0644 "$(printf '%s\n' \
        "# jupyterhub-platform: ceph-fuse's settings for the share at $MOUNT_PATH." \
        "[global]" \
        $'\t'"mon host = ${MONITORS//,/ }" \
        $'\t'"keyring = $FUSE_KEYRING" \
        $'\t'"client mount timeout = $BOOT_MOUNT_TIMEOUT")" || true
    # no-mon-config: ceph-fuse then reports a refused key as "Permission denied" and
    # unreachable monitors as "Connection timed out"; fetching the monitors' config first
    # turns both into "failed to fetch mon config". The kernel client never fetches it
    # either.
    options="ceph.id=$CEPH_USER,ceph.client_mountpoint=$SHARE_PATH,ceph.conf=$FUSE_CONF"
    options+=",ceph.keyring=$FUSE_KEYRING,ceph.no-mon-config,_netdev,nofail"
    fstab_line="none $MOUNT_PATH fuse.ceph $options 0 0"
    mount_line="none $MOUNT_PATH fuse.ceph $options,ceph.client_mount_timeout=$MOUNT_TIMEOUT 0 0"
fi

# --- mount ------------------------------------------------------------------------
new_fstab=$(fstab_with_line "$fstab_line")
fstype='' source=''
read -r fstype source <<<"$(mounted_here)" || true
if [[ -n $fstype ]]; then
    # Already mounted (by an earlier run, or by hand before this program took over):
    # keep it. Unmounting a share that users are using would break their servers.
    case $(identify "$fstype" "$source") in
        yes) ;;
        unknown)
            fail "$MOUNT_PATH has a ceph-fuse mount, but neither a ceph-fuse process here nor" \
                "the marker $MARKER_NAME on it says it is the share $SHARE_PATH (a ceph-fuse" \
                "that died leaves such a mount): check it, unmount it by hand and run again"
            ;;
        *) fail "$MOUNT_PATH already has $fstype $source mounted, not the share $SHARE_PATH" ;;
    esac
    state="already mounted"
else
    if [[ ! -d $MOUNT_PATH ]]; then
        mkdir -p "$MOUNT_PATH"
        undo+=("$MOUNT_PATH")
    elif lsattr -d "$MOUNT_PATH" 2>/dev/null | cut -d' ' -f1 | grep -q i; then
        # The unmount script locks an unused mount point (chattr +i) so that nothing
        # writes to the node's own disk there; unlock it to mount again.
        chattr -i "$MOUNT_PATH"
        relock=yes
    fi
    # Mount through the new fstab before it replaces the real one, so a failed mount
    # leaves fstab exactly as it was; its line differs from fstab's only by this run's
    # MOUNT_TIMEOUT.
    candidate=$(mktemp /tmp/jupyterhub-platform-fstab.XXXXXX)
    fstab_with_line "$mount_line" >"$candidate"
    status=0
    out=$(timeout "$MOUNT_DEADLINE" mount --fstab "$candidate" "$MOUNT_PATH" 2>&1 </dev/null) ||
        status=$?
    out=$(scrub "$out")
    if ((status == 124)); then
        out="no answer within $MOUNT_DEADLINE s${out:+; $out}"
    fi
    # mount.fuse.ceph exits 0 even when ceph-fuse fails (it only prints "Mount failed
    # with status code"), so what counts is what is mounted now.
    fstype='' source=''
    read -r fstype source <<<"$(mounted_here)" || true
    if [[ -z $fstype ]] || ((status != 0)); then
        hint=$(mount_hint "$out")
        fail "mounting $SHARE_PATH from $MONITORS at $MOUNT_PATH failed${hint:+: $hint}"$'\n'"${out:-mount gave no reason}"
    fi
    # Whatever mount(8) ran for our line (mount.ceph, or a stand-in for it), what is there
    # now must be this share.
    [[ $(identify "$fstype" "$source") != no ]] ||
        fail "after mounting, $MOUNT_PATH shows '$fstype $source', not the share $SHARE_PATH"
    state="mounted"
fi

# --- quotas (storage.enforceCapacity) ---------------------------------------------------
if [[ $ENFORCE_CAPACITY == yes ]] && ! why=$(quota_probe); then
    # A share this run mounted goes again, so the failed run leaves the node as it was.
    [[ $state != mounted ]] || umount "$MOUNT_PATH" 2>/dev/null || true
    fail "storage.enforceCapacity is on, but client.$CEPH_USER may not set CephFS quotas" \
        "($why): ask the Ceph operators for the p flag in its MDS cap" \
        "(mds 'allow rwp path=$SHARE_PATH'), or set storage.enforceCapacity to false"
fi
# The share is mounted, so the key is good: from here on a failure keeps the files written
# so far (only a later file that fails to be written is put back).
keep_changes

# The share's root holds every user's volume: root's alone. Pods reach their volume
# through the kubelet's bind mount, never through this directory (see volume-setup.sh).
chown 0:0 "$MOUNT_PATH"
chmod 0700 "$MOUNT_PATH"

# fstab keeps its mode: an administrator may have made it 0600 for another mount's
# credentials, which a rewrite must not make readable to every local user.
fstab_mode=644
[[ ! -f $FSTAB ]] || fstab_mode=$(mode_of "$FSTAB")
if put_file "$FSTAB" "$fstab_mode" "$new_fstab"; then
    fstab_state="fstab updated"
else
    fstab_state="fstab unchanged"
fi

previous_owner=
[[ ! -f $OWNER_FILE ]] || previous_owner=$(<"$OWNER_FILE")
put_file "$OWNER_FILE" 0644 "$OWNER" || true
if [[ -n $previous_owner && $previous_owner != "$OWNER" ]]; then
    say "taken over from $previous_owner: its delete step now leaves this mount alone"
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
            # Created when missing; an existing drop-in directory keeps its own mode.
            [[ -d /etc/systemd/system/$unit.service.d ]] ||
                install -d -m 0755 "/etc/systemd/system/$unit.service.d"
            if put_file "/etc/systemd/system/$unit.service.d/$DROPIN_NAME" 0644 "$dropin"; then
                reload=yes
            fi
            guarded+=("$unit")
            break
        fi
    done
done
# systemd makes mount units from fstab: a changed line needs a reload too, where systemd
# runs (it does wherever there is a k3s unit to guard).
if [[ $fstab_state == "fstab updated" ]] && ((${#guarded[@]} > 0)); then
    reload=yes
fi
if [[ $reload == yes ]]; then
    systemctl daemon-reload
fi
if ((${#guarded[@]} == 0)); then
    printf 'cephfs-mount[%s]: warning: no k3s or k3s-agent unit found; nothing keeps pods off this node when the share is not mounted\n' \
        "$NODE_NAME" >&2
fi

quota_state=
[[ $ENFORCE_CAPACITY == no ]] || quota_state="; quotas: allowed"
say "$MOUNT_PATH $state ($MOUNT_CLIENT client, $SHARE_PATH from $MONITORS); $fstab_state; kubelet guard: ${guarded[*]:-none}$quota_state"
