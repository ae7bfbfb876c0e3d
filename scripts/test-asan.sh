#!/usr/bin/env bash
# npm run test:asan — builds the addon with -fsanitize=address,undefined (build/asan/) and runs the runtime and
# hostile-embedder suites against it. Node itself is not instrumented, so AddressSanitizer's runtime is preloaded;
# leak detection is off because Node's own allocations at exit are not ours to free. Any report ends the
# process that made it, which fails the test it belonged to. Extra arguments go to vitest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

addon="$(node scripts/build-variant.mjs asan FORECASTD_SANITIZE=ON | tail -n 1)"
libasan="$("${CXX:-c++}" -print-file-name=libasan.so)"
if [ ! -e "$libasan" ]; then
  echo "test:asan: the compiler has no libasan.so (Debian/Ubuntu: apt-get install libasan8 or g++)" >&2
  exit 1
fi
npm run build:ts

export FORECASTD_ADDON="$addon"
export LD_PRELOAD="$libasan${LD_PRELOAD:+ $LD_PRELOAD}"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86:allow_user_segv_handler=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
echo "test:asan: $addon with $libasan"
# The Electron variant is another build (tested by the normal suite); everything else in these folders runs here.
exec npx vitest run test/runtime test/embedding --exclude test/embedding/electron.test.ts "$@"
