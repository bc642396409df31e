// The one CSV reader: strict, header-first, comma-separated, no quoting (the K-ium files and
// every file angiotrain writes are plain). Rejects what silently corrupts parsing elsewhere
// (UTF-8 BOM, CRLF line ends, ragged rows) with a message naming the file and line.
#pragma once

#include <string>
#include <vector>

namespace angiotrain {

struct CsvTable {
  std::string path;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<int> line_numbers;  // 1-based source line of each row, for messages

  // Column position of `name`, or -1.
  int Column(const std::string& name) const;
};

CsvTable ReadCsv(const std::string& path);
CsvTable ParseCsv(const std::string& text, const std::string& path_for_messages);

// Strict number parsing for CSV cells; throw Error "PATH:LINE: column C: ..." on failure.
long ParseCsvInteger(const CsvTable& t, size_t row, int column);
double ParseCsvReal(const CsvTable& t, size_t row, int column);

}  // namespace angiotrain
