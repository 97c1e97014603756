#!/bin/sh
# Install what drover needs to build and test, from Debian's archive, when it
# is missing. Idempotent; prints nothing when everything is already there.
#   scripts/deps.sh build    compiler and make
#   scripts/deps.sh test     build + cmocka, pytest and the tools tests drive
#   scripts/deps.sh bench    test + the peers benchmarks compare against
set -eu
want=${1:-test}
pkgs="gcc make libc6-dev pkg-config"
case $want in
  build) ;;
  test)  pkgs="$pkgs libcmocka-dev python3 python3-pytest clang libclang-rt-dev clang-tidy cppcheck procps iproute2 git systemd wrk podman runc" ;;
  bench) pkgs="$pkgs libcmocka-dev python3 python3-pytest clang libclang-rt-dev clang-tidy cppcheck procps iproute2 git systemd runit s6 xinetd wrk apache2-utils" ;;
  *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac
missing=
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps.sh: installing:$missing"
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq </dev/null >/dev/null || true
$sudo apt-get install -y -qq --no-install-recommends $missing </dev/null >/dev/null
