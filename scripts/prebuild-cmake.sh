#!/bin/sh
# prebuildify runs this in place of node-gyp (`npm run prebuild`), passing node-gyp arguments
# (rebuild --target=<newest Node> --devdir=... --release). They are ignored: this is a CMake project, and a
# Node-API build serves every Node version whatever target was asked for. prebuildify then strips
# build/Release/forecastd.node and moves it to prebuilds/<platform>-<arch>/forecastd.node.
set -e
cd "$(dirname "$0")/.."
exec node "$(node -p "require.resolve('cmake-js/bin/cmake-js')")" rebuild
