#!/bin/sh
# How forecastd is installed from this source tree on Debian 13 with Node.js 24: the image (deploy/Dockerfile)
# and the Debian 13 test root (scripts/test-debian13.sh) both run these steps, so the test root holds what
# the image holds.
#   deploy/install.sh system    Debian packages that building the addon needs (as root)
#   deploy/install.sh project   npm ci in the current folder: dependencies, the addon, the TypeScript, the
#                               bundled example's models (dev packages are still there afterwards)
set -eu

case "${1:-}" in
  system)
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends cmake g++ make
    rm -rf /var/lib/apt/lists/*
    ;;
  project)
    # scripts/install.mjs hands cmake-js the running Node.js's own headers (include/node beside its bin/),
    # which spares a download that fails offline. package.json's allowScripts keeps onnxruntime-node's
    # postinstall (a CUDA download from outside the npm registry) from running; the variable says the
    # same to an npm older than 11.19, which ignores allowScripts.
    export ONNXRUNTIME_NODE_INSTALL="${ONNXRUNTIME_NODE_INSTALL:-skip}"
    npm ci
    ;;
  *)
    echo "usage: deploy/install.sh system|project" >&2
    exit 2
    ;;
esac
