#!/usr/bin/env bash
# Configures and builds angiotrain (and its tests) into ./build with Ninja.
set -euo pipefail
cd "$(dirname "$0")/.."
# CI=true (CI services set it; .ci/run too): warnings are errors (ANGIOTRAIN_WERROR).
werror=()
if [[ "${CI:-}" == true ]]; then werror=(-DANGIOTRAIN_WERROR=ON); fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${werror[@]}"
cmake --build build
