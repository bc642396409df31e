#!/usr/bin/env bash
# Mutation check: does the test suite notice when a promise is broken? Applies each mutation of
# tests/mutation/mutations.py, one at a time, to a scratch copy of the tree, rebuilds the test
# binary that should catch it, runs the named tests, and reports which mutations survive.
#
#   tests/mutation/run.sh [NAME ...]     (all mutations, or the named ones)
#
# Needs a built tree (scripts/build.sh). The scratch copy ($ANGIOTRAIN_MUTATION_DIR, default
# /tmp/angiotrain-mutation) includes build/ and is mounted over the repository's own path in a
# private mount namespace while it builds and tests, so only the mutated file is recompiled and
# the working tree is never touched. Exit status: 0 when every mutation is caught.
set -euo pipefail
exec python3 "$(dirname "$0")/run.py" "$@"
