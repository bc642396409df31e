// Runs tests/models/recipe_peer.py (torch, torch.optim and torchvision in the system python) once
// per command for the test process and hands its output folder to the tests (issue 16).
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace angiotrain::testing {

// The folder holding recipe_peer.py's output for `args` (+ the folder); "" after a failed run,
// which also fails the calling test with the peer's output.
inline std::string RecipePeerOutput(const std::vector<std::string>& args) {
  static std::map<std::vector<std::string>, std::unique_ptr<ScratchDir>> cache;
  auto it = cache.find(args);
  if (it != cache.end()) return it->second->path();
  auto dir = std::make_unique<ScratchDir>();
  std::vector<std::string> argv = {ANGIOTRAIN_PYTHON,
                                   std::string(ANGIOTRAIN_SOURCE_DIR) + "/tests/models/recipe_peer.py"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(dir->path());
  CommandResult r = RunCommand(argv, 600);
  if (r.exit_code != 0) {
    ADD_FAILURE() << "recipe peer (" << ANGIOTRAIN_PYTHON << " tests/models/recipe_peer.py) failed:\n" << r.output;
    return "";
  }
  std::string path = dir->path();
  cache[args] = std::move(dir);
  return path;
}

// The lines of a peer text file as (first word, the numbers after it); fails the test when the
// file is missing.
inline std::vector<std::pair<std::string, std::vector<double>>> ReadPeerLines(const std::string& path) {
  std::vector<std::pair<std::string, std::vector<double>>> out;
  std::ifstream in(path);
  if (!in) ADD_FAILURE() << "cannot read " << path;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string key;
    words >> key;
    std::vector<double> values;
    double v;
    while (words >> v) values.push_back(v);
    out.emplace_back(key, values);
  }
  return out;
}

}  // namespace angiotrain::testing
