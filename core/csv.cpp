// Strict CSV reader. See csv.h.
#include "core/csv.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "core/atomic_file.h"
#include "core/error.h"

namespace angiotrain {

int CsvTable::Column(const std::string& name) const {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return static_cast<int>(i);
  return -1;
}

static std::vector<std::string> SplitLine(const std::string& line) {
  std::vector<std::string> cells;
  size_t start = 0;
  while (true) {
    size_t comma = line.find(',', start);
    std::string cell = line.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    // Trim surrounding spaces: "1, 0" is a common hand edit and unambiguous.
    size_t b = cell.find_first_not_of(" \t");
    size_t e = cell.find_last_not_of(" \t");
    cells.push_back(b == std::string::npos ? std::string() : cell.substr(b, e - b + 1));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return cells;
}

CsvTable ParseCsv(const std::string& text, const std::string& path) {
  CsvTable t;
  t.path = path;
  if (text.size() >= 3 && static_cast<unsigned char>(text[0]) == 0xEF &&
      static_cast<unsigned char>(text[1]) == 0xBB && static_cast<unsigned char>(text[2]) == 0xBF) {
    throw FileError(path, "starts with a UTF-8 byte-order mark (BOM); save it as plain UTF-8 without BOM");
  }
  size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') {
      throw FileError(path, "line " + std::to_string(line_no) +
                                " ends with CRLF (Windows line ends); convert it to LF line ends, e.g. with dos2unix");
    }
    if (line.find('"') != std::string::npos) {
      throw FileError(path, "line " + std::to_string(line_no) + ": quoted fields are not supported");
    }
    if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank line
    std::vector<std::string> cells = SplitLine(line);
    if (t.header.empty()) {
      t.header = std::move(cells);
      for (size_t i = 0; i < t.header.size(); ++i) {
        if (t.header[i].empty()) throw FileError(path, "line 1: empty column name at position " + std::to_string(i + 1));
        for (size_t j = 0; j < i; ++j)
          if (t.header[j] == t.header[i]) throw FileError(path, "line 1: column '" + t.header[i] + "' appears twice");
      }
      continue;
    }
    if (cells.size() != t.header.size()) {
      throw FileError(path, "line " + std::to_string(line_no) + ": has " + std::to_string(cells.size()) +
                                " fields, the header has " + std::to_string(t.header.size()));
    }
    t.rows.push_back(std::move(cells));
    t.line_numbers.push_back(line_no);
  }
  if (t.header.empty()) throw FileError(path, "is empty (no header line)");
  return t;
}

CsvTable ReadCsv(const std::string& path) { return ParseCsv(ReadFile(path), path); }

static std::string CellWhere(const CsvTable& t, size_t row, int column) {
  return t.path + ":" + std::to_string(t.line_numbers[row]) + ": column " + t.header[column];
}

long ParseCsvInteger(const CsvTable& t, size_t row, int column) {
  const std::string& s = t.rows[row][column];
  errno = 0;
  char* end = nullptr;
  long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno == ERANGE) {
    throw Error(CellWhere(t, row, column) + ": '" + s + "' is not an integer");
  }
  return v;
}

double ParseCsvReal(const CsvTable& t, size_t row, int column) {
  const std::string& s = t.rows[row][column];
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !std::isfinite(v)) {
    throw Error(CellWhere(t, row, column) + ": '" + s + "' is not a finite number");
  }
  return v;
}

}  // namespace angiotrain
