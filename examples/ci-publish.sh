#!/usr/bin/env bash
# A CI job that publishes new releases of a repotool repository.
#
# The root keys stay offline: this job holds only the targets key (a CI secret, read by
# repotool from the environment with --key env:VAR, never written to disk) and the
# online key (snapshot and timestamp; here also a secret, it could be a file or a KMS /
# HSM signer URI such as hsm:2?label=ci). Nothing a client sees changes unless the sign
# completes; with a missing or wrong key the job fails (exit 3) and writes nothing.
#
# Inputs (CI variables):
#   REPOTOOL_REPO         the repository directory (synced from/to your web server)
#   REPOTOOL_DIST         the folder of wheels and sdists the build produced (dist/)
#   REPOTOOL_TARGETS_KEY  secret: the targets private key, PEM (encrypted ones take
#                         REPOTOOL_KEY_PASSPHRASE)
#   REPOTOOL_ONLINE_KEY   secret: the online private key, PEM
set -euo pipefail
repo="${REPOTOOL_REPO:?set REPOTOOL_REPO}"
dist="${REPOTOOL_DIST:-dist}"
pass=()
if [ -n "${REPOTOOL_KEY_PASSPHRASE:-}" ]; then pass=(--passphrase-env REPOTOOL_KEY_PASSPHRASE); fi
rt() { echo "+ repotool $*" >&2; repotool "$@"; }

rt repo add "$repo" "$dist"
rt repo sign "$repo" --key env:REPOTOOL_TARGETS_KEY --key env:REPOTOOL_ONLINE_KEY "${pass[@]}"
rt repo check "$repo"
