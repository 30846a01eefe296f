#!/usr/bin/env bash
# Install the Debian packages that groups of tests need, skipping those already present.
#
# Usage: tools/install-test-deps.sh GROUP [GROUP...]
#   e2e      real single-node Ceph cluster plus sshd test hosts (tests/e2e)
#   haproxy  HAProxy config checks and runs
#   login    browser login through HAProxy (headless Chromium, NSS tools for its CA)
#
# Exits 0 without installing anything when it cannot (not root, no apt-get): the tests
# that need the packages then skip and say why, instead of CI failing on a workstation.
set -euo pipefail

usage() {
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
}

if [[ $# -eq 0 ]]; then
    usage >&2
    exit 2
fi

wanted=()
for group in "$@"; do
    case "$group" in
        e2e)
            # busybox and attr: the provisioner's scripts run under busybox sh, as in
            # its helper pod, and set CephFS quotas with setfattr.
            wanted+=(ceph-mon ceph-mgr ceph-osd ceph-mds ceph-fuse ceph-common
                openssh-server openssh-client iproute2 fuse3 util-linux busybox attr)
            ;;
        haproxy)
            wanted+=(haproxy)
            ;;
        login)
            wanted+=(chromium haproxy libnss3-tools)
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            echo "install-test-deps: unknown group '$group'" >&2
            usage >&2
            exit 2
            ;;
    esac
done

missing=()
for pkg in "${wanted[@]}"; do
    # dpkg -s succeeds for removed-but-not-purged packages too, so check the status word.
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q ' installed$'; then
        # The same package may be named by more than one group.
        if [[ " ${missing[*]-} " != *" $pkg "* ]]; then
            missing+=("$pkg")
        fi
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-test-deps: all packages for '$*' are installed"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "install-test-deps: not root, cannot install: ${missing[*]}"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps: apt-get not found, cannot install: ${missing[*]}"
    exit 0
fi

# Package maintainer scripts must not start the Ceph daemons or sshd on this machine: the
# tests start their own with private configs. invoke-rc.d asks policy-rc.d first, and exit
# code 101 means "action forbidden". An existing policy (containers ship one) is kept.
policy=/usr/sbin/policy-rc.d
made_policy=0
cleanup() {
    if [[ $made_policy -eq 1 ]]; then
        rm -f "$policy"
    fi
}
trap cleanup EXIT
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    made_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-test-deps: installing ${missing[*]}"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
