// Temporary-name-then-rename writes. See atomic_file.h.
#include "core/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace angiotrain {
namespace fs = std::filesystem;

AtomicOutput::AtomicOutput(std::string path) : final_path_(std::move(path)) {
  if (final_path_.empty()) throw Error("output path is empty");
  fs::path p(final_path_);
  fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw FileError(final_path_, "output folder '" + dir.string() + "' does not exist");
  }
  if (fs::is_directory(p, ec)) throw FileError(final_path_, "output path is a folder");
  if (access(dir.c_str(), W_OK) != 0) {
    throw FileError(final_path_, "output folder '" + dir.string() + "' is not writable");
  }
  temp_path_ = (dir / ("." + p.filename().string() + ".tmp-" + std::to_string(getpid()))).string();
}

AtomicOutput::~AtomicOutput() {
  if (!committed_) std::remove(temp_path_.c_str());
}

void AtomicOutput::Commit() {
  int fd = open(temp_path_.c_str(), O_RDONLY);
  if (fd < 0) throw FileError(final_path_, "temporary file vanished before commit");
  fsync(fd);
  close(fd);
  if (std::rename(temp_path_.c_str(), final_path_.c_str()) != 0) {
    throw FileError(final_path_, std::string("cannot rename temporary file: ") + std::strerror(errno));
  }
  committed_ = true;
}

namespace {

// The writer's pid of an AtomicOutput temporary's file name (".NAME.tmp-PID", NAME not empty), or 0.
pid_t TemporaryWriter(const std::string& file) {
  const size_t at = file.rfind(".tmp-");
  if (file.size() < 2 || file[0] != '.' || at == std::string::npos || at < 2) return 0;
  const std::string digits = file.substr(at + 5);
  if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) return 0;
  return static_cast<pid_t>(std::stol(digits));
}

}  // namespace

int RemoveStaleTemporaryFiles(const std::string& dir) {
  int removed = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code file_ec;
    if (!it->is_regular_file(file_ec)) continue;
    const pid_t pid = TemporaryWriter(it->path().filename().string());
    if (pid <= 0) continue;
    if (kill(pid, 0) == 0 || errno != ESRCH) continue;  // still running (or not ours to judge)
    if (fs::remove(it->path(), file_ec)) ++removed;
  }
  return removed;
}

void WriteFileAtomically(const std::string& path, const std::string& contents) {
  AtomicOutput out(path);
  {
    std::ofstream f(out.temp_path(), std::ios::binary);
    f << contents;
    f.flush();
    if (!f) throw FileError(path, "write failed");
  }
  out.Commit();
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw FileError(path, std::string("cannot open: ") + std::strerror(errno));
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

}  // namespace angiotrain
