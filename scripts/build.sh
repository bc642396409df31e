#!/usr/bin/env bash
# Configures and builds angiotrain (and its tests) into ./build with Ninja.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build
