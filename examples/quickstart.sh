#!/usr/bin/env bash
# repotool end to end on local defaults, in a temporary directory:
#   keys -> repository -> add -> sign -> check -> serve -> source add -> update
#   -> list/show -> download -> verify -> install (through pip) -> a second, fenced source.
# Usage: examples/quickstart.sh [WORKDIR]     (needs repotool installed: pip install .)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
cd "$work"
export REPOTOOL_HOME="$work/home"   # client state for this demo only
rt() { echo "+ repotool $*" >&2; repotool "$@"; }

echo "== publisher: a key, a repository, two projects"
rt key generate publisher --no-passphrase
rt repo init repo --name "acme internal" --key publisher.pub
python3 "$here/make_wheels.py" dist "acme-app==1.0:acme-lib>=1.0" "acme-lib==1.0" "acme-lib==1.1" >/dev/null
rt repo add repo dist/
rt repo sign repo --key publisher.key
rt repo check repo

echo "== serve it on loopback"
python3 -m repotool repo serve repo --port 0 > serve.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q '^serving' serve.log && break; sleep 0.1; done
url="$(sed -n 's/^serving .* at \(http[^ ]*\)$/\1/p' serve.log)"
echo "repository served at $url"

echo "== user: add the source with the publisher's key, update, look around"
rt source add acme "$url" --key publisher.pub
rt update
rt list
rt show acme-app
rt download acme-app==1.0 -d downloads
rt verify downloads/*

echo "== install through pip into a fresh venv: pip sees only verified bytes"
python3 -m venv venv
rt install acme-app --python venv/bin/python
venv/bin/python -c 'import acme_app, acme_lib; print("installed acme_app", acme_app.__version__, "acme_lib", acme_lib.__version__)'

echo "== a second repository, fenced with --only: it provides 'tools-*' and nothing else"
rt key generate tools --no-passphrase
rt repo init tools-repo --name "tools" --key tools.pub
python3 "$here/make_wheels.py" tools-dist "tools-cli==0.1" "acme-lib==99.0" >/dev/null
rt repo add tools-repo tools-dist/
rt repo sign tools-repo --key tools.key
rt source add tools tools-repo --key tools.pub --only 'tools-*'
rt update
rt show acme-lib | head -1   # still resolves to 'acme': 99.0 elsewhere does not win
rt install tools-cli --python venv/bin/python
echo "quickstart finished in $work"
