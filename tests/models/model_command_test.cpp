// `angiotrain model info`, run as a user would: the stage table, and parameter and
// multiply-add counts equal to the library's for the same model.
#include <gtest/gtest.h>

#include <regex>

#include "models/efficientnet.h"
#include "models/model_summary.h"
#include "tests/support/test_support.h"

namespace angiotrain {
namespace {

long long NumberAfter(const std::string& text, const std::string& label) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex(label + ": ([0-9]+)"))) return -1;
  return std::stoll(m[1]);
}

TEST(ModelInfoCommand, PrintsTheStageTableParametersAndMultiplyAddsOfTheConfiguredModel) {
  testing::CommandResult r = testing::RunAngiotrain(
      {"model", "info", "--variant", "b0", "--in-channels", "8", "--resolution", "256", "--task", "multitask"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("8 input channels, head multitask, 22 logits"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(FormatStageTable(StageTable(EfficientNetConfig::ForVariant("b0"), 256))), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("Conv3x3                  256x256"), std::string::npos) << r.output;

  EfficientNetConfig c = EfficientNetConfig::ForVariant("b0");
  c.in_channels = 8;
  c.num_outputs = 22;
  EfficientNet model(c);
  EXPECT_EQ(NumberAfter(r.output, "parameters"), CountParameters(*model)) << r.output;
  // B0 with 3 channels and 1000 classes has 5288548; 8 channels add 32*5*9 stem weights and the
  // 22-logit head replaces the 1000-class classifier.
  EXPECT_EQ(NumberAfter(r.output, "parameters"), 5288548 + 32 * 5 * 9 - (1000 - 22) * 1281) << r.output;
  EXPECT_EQ(NumberAfter(r.output, "multiply-adds"), CountMultiplyAdds(c, 256)) << r.output;
}

TEST(ModelInfoCommand, RejectsAnUnknownVariantWithTheValidNames) {
  testing::CommandResult r = testing::RunAngiotrain({"model", "info", "--variant", "b9"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("unknown EfficientNet variant 'b9'"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace angiotrain
