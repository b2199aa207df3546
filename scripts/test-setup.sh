#!/usr/bin/env bash
# System packages the test suite drives, installed once: Debian's Chromium, its driver and
# an emoji font (tests/test_browser.py). Quick when they are there: dpkg is asked first, and
# `apt-get update` runs only when something is missing. Tests never install anything.
# Outside CI a machine that cannot install them gets a warning and the browser test skips
# with the reason; under CI (CI set) that is an error.
set -euo pipefail
PACKAGES=(chromium chromium-driver fonts-noto-color-emoji)

missing=()
for package in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

fail() {
    echo "scripts/test-setup.sh: cannot install ${missing[*]}: $1" >&2
    if [ -n "${CI:-}" ]; then exit 1; fi
    echo "scripts/test-setup.sh: the browser test will be skipped" >&2
    exit 0
}
command -v apt-get >/dev/null || fail "no apt-get on this system"
if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    fail "installing with apt-get needs root (or password-less sudo)"
fi
echo "scripts/test-setup.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
