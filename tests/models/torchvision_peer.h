// Runs tests/models/torchvision_peer.py (the real torchvision, in the system python) and keeps
// its outputs for the rest of the test process.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace angiotrain::testing {

// Runs the peer with `args`; fails the calling test (fatally) when it does not exit 0.
inline void RunTorchvisionPeer(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {ANGIOTRAIN_PYTHON,
                                   std::string(ANGIOTRAIN_SOURCE_DIR) + "/tests/models/torchvision_peer.py"};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandResult r = RunCommand(argv, 600);
  ASSERT_EQ(r.exit_code, 0) << "torchvision peer failed:\n" << r.output;
}

// A folder, kept for the whole test process, holding the peer's output for `key`; runs the
// peer with `args` + [folder] the first time. Returns "" (and fails the test) when it failed.
inline std::string TorchvisionPeerOutput(const std::string& key, const std::vector<std::string>& args) {
  static std::map<std::string, std::unique_ptr<ScratchDir>> cache;
  auto it = cache.find(key);
  if (it != cache.end()) return it->second->path();
  auto dir = std::make_unique<ScratchDir>();
  std::vector<std::string> full = args;
  full.push_back(dir->path());
  bool ok = false;
  [&] {
    RunTorchvisionPeer(full);
    ok = true;
  }();
  if (!ok) return "";
  std::string path = dir->path();
  cache[key] = std::move(dir);
  return path;
}

}  // namespace angiotrain::testing
