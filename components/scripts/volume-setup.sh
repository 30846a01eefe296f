#!/bin/sh
# local-path-provisioner `setup`: make the directory of a new volume on the shared mount.
# Runs after volume-guard.sh, which the program puts ahead of it.
set -eu

# The parent is the share itself, so no -p: a retried claim finds its directory there.
[ -d "$VOL_DIR" ] || mkdir -m 0777 "$VOL_DIR"
