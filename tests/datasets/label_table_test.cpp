// Label CSVs: every label cell, Aneurysm or location, is exactly 0 or 1, and anything else is
// refused naming the file, the line and the column.
#include "datasets/label_table.h"

#include <gtest/gtest.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "tests/support/test_support.h"

namespace angiotrain::testing {
namespace {

// Three patients with no aneurysm; `cell` replaces the label of patient 2's column `column`.
std::string LabelCsv(const std::string& column, const std::string& cell) {
  std::string header = "Index,Aneurysm", rows[3];
  for (int p = 0; p < 3; ++p) rows[p] = std::to_string(p + 1) + "," + (p == 1 && column == "Aneurysm" ? cell : "0");
  for (const auto& name : LocationNames()) {
    header += "," + name;
    for (int p = 0; p < 3; ++p) rows[p] += "," + (p == 1 && name == column ? cell : std::string("0"));
  }
  return header + "\n" + rows[0] + "\n" + rows[1] + "\n" + rows[2] + "\n";
}

TEST(ReadLabelTable, ReadsZeroAndOneInEveryLocationColumn) {
  ScratchDir dir;
  WriteFileAtomically(dir / "train.csv", LabelCsv("L_ACOM", "1"));
  LabelTable table = ReadLabelTable(dir / "train.csv");
  ASSERT_EQ(table.patients.size(), 3u);
  EXPECT_EQ(table.patients[1].locations[LocationIndex("L_ACOM")], 1);
  EXPECT_EQ(table.patients[0].locations[LocationIndex("L_ACOM")], 0);
}

TEST(ReadLabelTable, RefusesLocationLabelsOtherThanZeroOrOneNamingFileLineAndColumn) {
  ScratchDir dir;
  const std::string path = dir / "train.csv";
  // The first, a middle and the last location column; patient 2 is on line 3.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"L_ICA", "2"}, {"L_ACOM", "-1"}, {"R_PCA", "0.5"}, {"L_MCA", "1.0"}, {"R_ACA", ""}, {"BA", "yes"}};
  for (const auto& [column, cell] : cases) {
    ASSERT_GE(LocationIndex(column), 0) << column;
    WriteFileAtomically(path, LabelCsv(column, cell));
    try {
      ReadLabelTable(path);
      ADD_FAILURE() << column << " = '" << cell << "' was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path + ":3: column " + column + ": label '" + cell + "' is not 0 or 1"),
                std::string::npos)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace angiotrain::testing
