#!/usr/bin/env bash
# `make dist`'s last step: the binary it made (the argument) runs on a host without the Swift toolchain. ldd must
# find every library, and none may come from the toolchain (its runtime, Foundation, Dispatch): the Swift runtime is
# linked in (--static-swift-stdlib), and what remains is the system's (FFmpeg's libraries, libseccomp, glibc).
set -euo pipefail
binary=${1:?the binary to check}
toolchain=$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")  # /opt/swift/usr for /opt/swift/usr/bin/swift
libraries=$(ldd "$binary")
bad=$(grep -E "not found|$toolchain/|libswift|libFoundation|libdispatch|libBlocksRuntime" <<<"$libraries" || true)
[ -z "$bad" ] || { echo "$binary: not relocatable, ldd shows:"; echo "$bad"; exit 1; }
echo "$binary: $(wc -l <<<"$libraries") libraries, all the system's (none from $toolchain, none missing)"
# And it runs with no toolchain path around it.
env -i "$binary" --help >/dev/null
