#!/usr/bin/env bash
# Fetch the Vega scripts that `dvc plots show` pages load from a CDN, so the browser test can
# render them with no network: the exact versions dvc-render's HTML names, from the npm
# registry (npm pack fetches the package tarballs only, no dependencies: the builds used are
# self-contained). Run once per machine; CI runs it from .ci/run.
#
#   bash tests/browser/fetch_vega.sh            # into ~/.cache/nlpflow/vega
#   NLPFLOW_VEGA_DIR=/some/dir bash tests/browser/fetch_vega.sh
set -euo pipefail

dest="${NLPFLOW_VEGA_DIR:-$HOME/.cache/nlpflow/vega}"
if [[ -s "$dest/vega.min.js" && -s "$dest/vega-lite.min.js" && -s "$dest/vega-embed.min.js" ]]; then
  echo "fetch_vega: already in $dest"
  exit 0
fi
command -v npm >/dev/null || { echo "fetch_vega: npm not found" >&2; exit 1; }
mkdir -p "$dest"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2 >/dev/null)
for pkg in vega:vega-5.20.2 vega-lite:vega-lite-5.2.0 vega-embed:vega-embed-6.18.2; do
  name="${pkg%%:*}"
  mkdir -p "$tmp/$name"
  tar -xzf "$tmp/${pkg#*:}.tgz" -C "$tmp/$name" "package/build/$name.min.js"
  cp "$tmp/$name/package/build/$name.min.js" "$dest/$name.min.js.tmp"
  mv "$dest/$name.min.js.tmp" "$dest/$name.min.js"
done
echo "fetch_vega: vega 5.20.2, vega-lite 5.2.0, vega-embed 6.18.2 -> $dest"
