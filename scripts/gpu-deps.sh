#!/usr/bin/env bash
# Run on a Debian 12 machine with network: downloads the Debian packages that a GPU machine with
# only a pip CUDA LibTorch lacks (Open MPI, parallel HDF5, TOML++, GoogleTest, CLI11, nlohmann
# JSON and the runtime libraries they pull in) into .gpu-deps/debs (about 15 MB), and writes a
# small phantom volume file (.gpu-deps/train.h5, 160 patients at 128 px) for the GPU training
# check. scripts/gpu-check.sh unpacks them into a prefix there (never into /).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${ANGIOTRAIN:-build/launcher/angiotrain}
mkdir -p .gpu-deps/debs
packages=(
  libopenmpi-dev libopenmpi3 openmpi-bin openmpi-common libevent-core-2.1-7 libevent-pthreads-2.1-7
  libfabric1 libhwloc15 libhwloc-plugins libibverbs1 libnl-3-200 libnl-route-3-200 libpmix2 libpmix-dev
  libpsm-infinipath1 libpsm2-2 libucx0 libmunge2 librdmacm1 libhwloc-dev libevent-dev
  libhdf5-openmpi-103-1 libhdf5-openmpi-dev libsz2 libaec0 libcurl4 libnghttp2-14 librtmp1 libssh2-1
  libpsl5 libldap-2.5-0 libsasl2-2 libbrotli1
  libtomlplusplus-dev libtomlplusplus3 libgtest-dev googletest libcli11-dev nlohmann-json3-dev
)
(cd .gpu-deps/debs && apt-get download "${packages[@]}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$BIN" synth --out "$tmp/phantom" --patients 160 --test-patients 0 --seed 7 --resolution 256 \
  --aneurysm-size 3,5 --contrast 2 --distractors 0 --quiet
"$BIN" ingest --input "$tmp/phantom/train_set" --labels "$tmp/phantom/train_set/train.csv" \
  --out .gpu-deps/train.h5 --resolution 128
du -sh .gpu-deps
