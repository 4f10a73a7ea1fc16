#!/usr/bin/env bash
# Prints the Debian mirror the images (and the fresh-host check's bare root) are made from:
# $DEBIAN_MIRROR, else the first non-security URI in this host's apt sources (deb822 or
# one-line), else deb.debian.org. Behind a site's proxy that is the mirror apt already uses.
set -euo pipefail
if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; exit 0; fi
uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1 || true)
[ -n "$uri" ] || uri=$(grep -hsE '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security | head -1 || true)
echo "${uri:-http://deb.debian.org/debian}"
