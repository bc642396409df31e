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

int RemoveStaleTemporaryFiles(const std::string& dir, const std::string& name) {
  const std::string prefix = "." + name + ".tmp-";
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string file = entry.path().filename().string();
    if (file.rfind(prefix, 0) != 0) continue;
    const std::string pid_text = file.substr(prefix.size());
    if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
    if (kill(pid, 0) == 0 || errno != ESRCH) continue;  // still running (or not ours to judge)
    if (fs::remove(entry.path(), ec)) ++removed;
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
