// Atomic outputs: every file angiotrain produces is written under a temporary name in the
// destination folder and renamed over the final name only when complete, so a failed or killed
// run never leaves a partial file and never clobbers an existing good one.
#pragma once

#include <string>

namespace angiotrain {

class AtomicOutput {
 public:
  // Checks that the destination folder exists and is writable; throws Error naming `path`.
  explicit AtomicOutput(std::string path);
  // Removes the temporary file unless Commit() succeeded.
  ~AtomicOutput();
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;

  // Where to write: a hidden sibling of the final path, unique to this process.
  const std::string& temp_path() const { return temp_path_; }
  const std::string& final_path() const { return final_path_; }
  // fsyncs the temporary file and renames it over the final path.
  void Commit();
  bool committed() const { return committed_; }

 private:
  std::string final_path_;
  std::string temp_path_;
  bool committed_ = false;
};

// Removes the temporary files AtomicOutput left in `dir` and the folders below it (".NAME.tmp-PID",
// any NAME) whose writer no longer runs on this host: what writers killed mid-write leave behind
// (last.pt's, best.pt's, metrics.jsonl's, ...). A live writer's temporaries, and every file not
// named so, stay. Returns how many it removed.
int RemoveStaleTemporaryFiles(const std::string& dir);

// Writes `contents` to `path` atomically.
void WriteFileAtomically(const std::string& path, const std::string& contents);

// Reads a whole file; throws Error naming the file when it cannot be read.
std::string ReadFile(const std::string& path);

}  // namespace angiotrain
