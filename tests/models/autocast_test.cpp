// Mixed precision: AutocastScope on the CPU (always run), and on CUDA the training step against
// the CPU result in fp32 and bf16 autocast against fp32 (skipped, and reported as skipped, when
// LibTorch sees no CUDA device; scripts/gpu-check.sh runs them on a GPU machine).
#include "models/autocast.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

#include "core/error.h"
#include "models/efficientnet.h"
#include "models/heads.h"

namespace angiotrain {
namespace {

// A deterministic small model: no dropout, no stochastic depth, so two copies compute the same.
EfficientNetConfig SmallConfig() {
  EfficientNetConfig c = EfficientNetConfig::ForVariant("b0");
  c.variant = "custom";
  c.width_mult = 0.5;
  c.depth_mult = 0.5;
  c.in_channels = 8;
  c.num_outputs = TaskOutputs(Task::kMultitask);
  c.dropout = 0;
  c.stochastic_depth_prob = 0;
  return c;
}

torch::Tensor FlatGradients(EfficientNet& model) {
  std::vector<torch::Tensor> parts;
  for (auto& p : model->parameters()) parts.push_back(p.grad().detach().to(torch::kCPU, torch::kFloat).flatten());
  return torch::cat(parts);
}

torch::Tensor FlatParameters(EfficientNet& model) {
  std::vector<torch::Tensor> parts;
  for (auto& p : model->parameters()) parts.push_back(p.detach().to(torch::kCPU, torch::kFloat).flatten());
  return torch::cat(parts);
}

double Cosine(const torch::Tensor& a, const torch::Tensor& b) {
  return (a * b).sum().item<double>() / (a.norm().item<double>() * b.norm().item<double>());
}

double RelativeError(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

TEST(ParsePrecision, AutoIsBf16OnCudaOnly) {
  EXPECT_FALSE(ParsePrecision("auto", torch::kCPU).has_value());
  EXPECT_EQ(ParsePrecision("auto", torch::Device(torch::kCUDA, 0)), torch::kBFloat16);
  EXPECT_FALSE(ParsePrecision("fp32", torch::Device(torch::kCUDA, 0)).has_value());
  EXPECT_EQ(ParsePrecision("bf16", torch::kCPU), torch::kBFloat16);
  EXPECT_EQ(ParsePrecision("fp16", torch::kCPU), torch::kHalf);
  try {
    ParsePrecision("half", torch::kCPU);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "precision 'half': expected auto, fp32, bf16 or fp16");
  }
}

TEST(AutocastScope, RunsConvolutionsInBf16OnTheCpuAndRestoresTheState) {
  torch::manual_seed(0);
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(8, 16, 3).padding(1));
  auto x = torch::rand({2, 8, 16, 16});
  ASSERT_FALSE(AutocastScope::Enabled(torch::kCPU));
  {
    AutocastScope amp(torch::kCPU, torch::kBFloat16);
    EXPECT_TRUE(AutocastScope::Enabled(torch::kCPU));
    EXPECT_EQ(conv(x).scalar_type(), torch::kBFloat16);
    {
      AutocastScope inner(torch::kCPU, std::nullopt);  // fp32 scope inside: changes nothing
      EXPECT_TRUE(AutocastScope::Enabled(torch::kCPU));
      EXPECT_EQ(conv(x).scalar_type(), torch::kBFloat16);
    }
    EXPECT_TRUE(AutocastScope::Enabled(torch::kCPU));
  }
  EXPECT_FALSE(AutocastScope::Enabled(torch::kCPU));
  EXPECT_EQ(conv(x).scalar_type(), torch::kFloat);
}

TEST(AutocastScope, Bf16ForwardOnTheCpuStaysCloseToFp32) {
  torch::manual_seed(0);
  EfficientNet model(SmallConfig());
  model->eval();
  auto x = torch::rand({2, 8, 64, 64});
  torch::NoGradGuard no_grad;
  auto reference = model->forward(x);
  torch::Tensor low;
  {
    AutocastScope amp(torch::kCPU, torch::kBFloat16);
    low = model->forward(x);
  }
  EXPECT_EQ(low.scalar_type(), torch::kBFloat16);
  // bf16 keeps 8 bits of mantissa: logits agree to about 1e-2 of their range, not more.
  EXPECT_LT(RelativeError(low.to(torch::kFloat), reference), 5e-2);
  EXPECT_GT(Cosine(low.to(torch::kFloat).flatten(), reference.flatten()), 0.999);
}

TEST(AutocastScope, RejectsOtherDevices) {
  EXPECT_THROW(AutocastScope(c10::DeviceType::Meta, torch::kBFloat16), Error);
}

class CudaTrainingStep : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "LibTorch sees no CUDA device";
    // Exact fp32 on the GPU for the comparison with the CPU (TF32 rounds to 10 mantissa bits).
    tf32_cudnn_ = at::globalContext().allowTF32CuDNN();
    tf32_cublas_ = at::globalContext().allowTF32CuBLAS();
    at::globalContext().setAllowTF32CuDNN(false);
    at::globalContext().setAllowTF32CuBLAS(false);
  }
  void TearDown() override {
    if (!torch::cuda::is_available()) return;
    at::globalContext().setAllowTF32CuDNN(tf32_cudnn_);
    at::globalContext().setAllowTF32CuBLAS(tf32_cublas_);
  }
  bool tf32_cudnn_ = true, tf32_cublas_ = false;
};

TEST_F(CudaTrainingStep, Fp32StepsOnCudaMatchTheCpuInChannelsLast) {
  const torch::Device cuda(torch::kCUDA, 0);
  torch::manual_seed(0);
  EfficientNet cpu(SmallConfig());
  torch::manual_seed(0);
  EfficientNet gpu(SmallConfig());
  gpu->to(cuda);
  ToChannelsLast(*gpu);
  torch::optim::SGD cpu_opt(cpu->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  torch::optim::SGD gpu_opt(gpu->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  cpu->train();
  gpu->train();
  torch::manual_seed(1);
  for (int step = 0; step < 3; ++step) {
    auto x = torch::rand({4, 8, 64, 64});
    auto y = torch::randint(0, 2, {4, TaskOutputs(Task::kMultitask)}).to(torch::kFloat);
    cpu_opt.zero_grad();
    gpu_opt.zero_grad();
    auto cpu_loss = BceWithLogitsLoss(cpu->forward(x), y);
    auto gpu_loss =
        BceWithLogitsLoss(gpu->forward(x.to(cuda).contiguous(torch::MemoryFormat::ChannelsLast)), y.to(cuda));
    cpu_loss.backward();
    gpu_loss.backward();
    EXPECT_NEAR(gpu_loss.item<double>(), cpu_loss.item<double>(), 1e-4 * cpu_loss.item<double>()) << "step " << step;
    EXPECT_LT(RelativeError(FlatGradients(gpu), FlatGradients(cpu)), 1e-3) << "step " << step;
    cpu_opt.step();
    gpu_opt.step();
  }
  EXPECT_LT(RelativeError(FlatParameters(gpu), FlatParameters(cpu)), 1e-4);
}

TEST_F(CudaTrainingStep, Bf16AutocastGradientsFollowFp32) {
  const torch::Device cuda(torch::kCUDA, 0);
  torch::manual_seed(0);
  EfficientNet model(SmallConfig());
  model->to(cuda);
  ToChannelsLast(*model);
  model->train();
  torch::manual_seed(1);
  auto x = torch::rand({8, 8, 64, 64}).to(cuda).contiguous(torch::MemoryFormat::ChannelsLast);
  auto y = torch::randint(0, 2, {8, TaskOutputs(Task::kMultitask)}).to(torch::kFloat).to(cuda);

  model->zero_grad();
  auto loss32 = BceWithLogitsLoss(model->forward(x), y);
  loss32.backward();
  auto grad32 = FlatGradients(model);

  model->zero_grad();
  torch::Tensor logits;
  {
    AutocastScope amp(torch::kCUDA, torch::kBFloat16);
    logits = model->forward(x);
  }
  EXPECT_EQ(logits.scalar_type(), torch::kBFloat16);
  auto loss16 = BceWithLogitsLoss(logits.to(torch::kFloat), y);
  loss16.backward();
  auto grad16 = FlatGradients(model);
  for (auto& p : model->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat);  // master weights stay fp32
  EXPECT_NEAR(loss16.item<double>(), loss32.item<double>(), 2e-2 * loss32.item<double>());
  EXPECT_GT(Cosine(grad16, grad32), 0.99);
}

}  // namespace
}  // namespace angiotrain
