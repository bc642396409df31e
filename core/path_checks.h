// Checks on the paths a command is given, run before the command reads or writes anything: a
// path of the wrong kind (a folder where a file is expected, or the reverse), and an output that
// would replace one of the command's own inputs.
//
// Each throws CollectiveError with a message that starts with the offending path. The checks
// look only at the command line and the file system, which every rank of a job sees alike, so a
// command runs them on every rank and every rank fails alike: one message, a clean exit.
#pragma once

#include <string>
#include <vector>

namespace angiotrain {

// `path` must exist and not be a folder (links are followed). `what` says what was expected,
// e.g. "a TOML file": "PATH: is a folder, expected a TOML file".
void RequireFile(const std::string& path, const std::string& what);

// `path` must be an existing folder: "PATH: is a file, expected a folder of ...".
void RequireFolder(const std::string& path, const std::string& what);

// Refuses `output` when it resolves to one of `inputs` (the same file after resolving links, `..`
// and relative spellings, or a hard link to it), or when an input is a folder and `output` lies
// inside it. The message names both paths. Empty paths are ignored (options not given).
void RefuseOutputOverInput(const std::string& output, const std::vector<std::string>& inputs);

}  // namespace angiotrain
