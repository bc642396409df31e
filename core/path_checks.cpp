// Path kind and output-over-input checks. See path_checks.h.
#include "core/path_checks.h"

#include <filesystem>
#include <system_error>

#include "core/error.h"

namespace angiotrain {
namespace fs = std::filesystem;
namespace {

// The path with links, "." and ".." resolved as far as it exists (the rest appended as written).
fs::path Resolved(const std::string& path) {
  std::error_code ec;
  fs::path resolved = fs::weakly_canonical(path, ec);
  return ec ? fs::absolute(path).lexically_normal() : resolved;
}

bool IsInside(const fs::path& path, const fs::path& folder) {
  auto p = path.begin();
  for (auto f = folder.begin(); f != folder.end(); ++f, ++p) {
    if (f->empty()) continue;  // a trailing separator
    if (p == path.end() || *p != *f) return false;
  }
  return true;
}

}  // namespace

void RequireFile(const std::string& path, const std::string& what) {
  std::error_code ec;
  const fs::file_status s = fs::status(path, ec);
  if (!fs::exists(s)) throw CollectiveError(path + ": does not exist (expected " + what + ")");
  if (fs::is_directory(s)) throw CollectiveError(path + ": is a folder, expected " + what);
}

void RequireFolder(const std::string& path, const std::string& what) {
  std::error_code ec;
  const fs::file_status s = fs::status(path, ec);
  if (!fs::exists(s)) throw CollectiveError(path + ": does not exist (expected " + what + ")");
  if (!fs::is_directory(s)) throw CollectiveError(path + ": is a file, expected " + what);
}

void RefuseOutputOverInput(const std::string& output, const std::vector<std::string>& inputs) {
  if (output.empty()) return;
  const fs::path out = Resolved(output);
  std::error_code ec;
  for (const auto& input : inputs) {  // the same file first: the more precise message
    if (input.empty()) continue;
    if (out == Resolved(input) || fs::equivalent(output, input, ec)) {  // equivalent: hard links
      throw CollectiveError(output + ": is the input " + input +
                            "; an output never replaces an input, choose another output path");
    }
  }
  for (const auto& input : inputs) {
    if (!input.empty() && fs::is_directory(input, ec) && IsInside(out, Resolved(input))) {
      throw CollectiveError(output + ": is inside the input folder " + input +
                            "; an output never goes into an input folder, choose another output path");
    }
  }
}

}  // namespace angiotrain
