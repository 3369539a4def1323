#!/usr/bin/env bash
# third_party/setup-deps.sh: the one dependency step of ekglue. Idempotent and cheap when everything is there.
#
# 1. Installs the Debian packages ekglue builds and tests with (only the missing ones; needs root for that).
# 2. Fetches Debian's grpc *source* package matching the installed libgrpc-dev and extracts from it the upb
#    runtime headers and the upb-generated Envoy/xDS headers into the cache folder (default: build/deps).
#    Nothing fetched here is ever committed; see third_party/README.md.
#
# Usage: third_party/setup-deps.sh [--no-install] [--build-only] [CACHE_DIR]
#   --no-install  only check the packages (fail with the apt-get command to run)
#   --build-only  only what building the ekglue binary needs (the Docker image's builder stage)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
install=1
build_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --no-install) install=0; shift ;;
    --build-only) build_only=1; shift ;;
    *) break ;;
  esac
done
cache=${1:-${EKG_DEPS_DIR:-$top/build/deps}}

# What building ekglue needs.
build_packages=(
  build-essential cmake make pkg-config ca-certificates
  libgrpc-dev protobuf-compiler
  libcurl4-openssl-dev libcjson-dev libyaml-dev libmicrohttpd-dev
)
# What the tests, the fuzzers and the benchmarks add. The README's commands rely on both lists.
test_packages=(
  clang libclang-rt-14-dev llvm libcmocka-dev strace
  python3 python3-grpcio python3-protobuf python3-yaml python3-prometheus-client python3-jsonschema python3-h2 chromium openssl
)
packages=("${build_packages[@]}")
if [ "$build_only" = 0 ]; then packages+=("${test_packages[@]}"); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$install" = 0 ] || [ "$(id -u)" != 0 ]; then
    echo "setup-deps: missing Debian packages: ${missing[*]}" >&2
    echo "setup-deps: run as root: apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "setup-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The generated upb headers hard-code field offsets: they must come from exactly the installed grpc.
src_version=$(dpkg-query -W -f='${source:Version}' libgrpc-dev)
upstream=${src_version%-*}
upstream=${upstream#*:}
dest="$cache/grpc-$src_version"
stamp="$dest/.complete"
if [ -f "$stamp" ]; then
  exit 0
fi

# The machine's Debian mirror, read from apt's own configuration (deb822 or one-line format).
mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {print $2}' | grep -v security | head -n1 || true)
if [ -z "$mirror" ]; then
  mirror=$(grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
           | grep -v security | awk '{print $2}' | head -n1 || true)
fi
[ -n "$mirror" ] || { echo "setup-deps: cannot find a Debian mirror in /etc/apt" >&2; exit 1; }

work="$cache/apt-src"
rm -rf "$work"
mkdir -p "$work/lists/partial" "$dest"
echo "deb-src $mirror bookworm main" > "$work/sources.list"
aptopts=(-o Dir::Etc::SourceList="$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
         -o Dir::State::Lists="$work/lists" -o APT::Sandbox::User=root)
echo "setup-deps: fetching grpc $src_version source from $mirror"
apt-get "${aptopts[@]}" -qq update
(cd "$work" && apt-get "${aptopts[@]}" -qq source --download-only "grpc=$src_version" >/dev/null)
tarball="$work/grpc_${upstream}.orig.tar.gz"
[ -f "$tarball" ] || { echo "setup-deps: $tarball was not downloaded" >&2; exit 1; }

rm -rf "$dest" && mkdir -p "$dest"
tar xzf "$tarball" -C "$dest" --strip-components=1 --wildcards \
  "grpc-$upstream/third_party/upb/upb/*.h" "grpc-$upstream/third_party/upb/upb/*.inc" \
  "grpc-$upstream/third_party/upb/third_party/utf8_range/utf8_range.h" \
  "grpc-$upstream/src/core/ext/upb-generated/*.h" \
  "grpc-$upstream/src/core/ext/upbdefs-generated/*.h" \
  "grpc-$upstream/LICENSE"
rm -rf "$work"
touch "$stamp"
echo "setup-deps: upb headers in $dest"
