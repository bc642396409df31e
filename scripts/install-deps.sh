#!/usr/bin/env bash
# Installs what angiotrain needs on Debian 12 from Debian's own packages (build, run, tests and
# the Python peers used by tests and benchmarks). Skips apt entirely when all are present.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config bc
  libtorch-dev libopenblas0-pthread
  libopenmpi-dev openmpi-bin
  libhdf5-openmpi-dev hdf5-tools
  libopencv-dev
  libdcmtk-dev  # DICOM ingest (datasets/dicom_view.cpp); optional at build time (ANGIOTRAIN_WITH_DICOM=AUTO)
  libtomlplusplus-dev prometheus-cpp-dev libcli11-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev
  python3 python3-numpy python3-h5py python3-pydicom python3-opencv python3-torch python3-torchvision python3-sklearn
  libjs-chart.js chromium
  slurm-wlm munge  # tests/slurm: a single-node Slurm on loopback (slurmctld, slurmd, srun --mpi=pmix)
  prometheus prometheus-pushgateway  # tests/experiments/metrics_prometheus_test.cpp: real servers on loopback
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
