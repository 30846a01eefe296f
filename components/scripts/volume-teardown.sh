#!/bin/sh
# local-path-provisioner `teardown`: remove a deleted volume's directory from the share.
# Runs only for a storage class with reclaimPolicy Delete (the default Retain never calls
# it), after volume-guard.sh, which the program puts ahead of it.
set -eu

rm -rf "$VOL_DIR"
