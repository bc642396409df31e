// The optimizer of train.optimizer = "adam" moves weights exactly as torch.optim.Adam with the
// same learning rate (issue 16): same betas, eps, no weight decay, bias correction, step by step
// against tests/models/recipe_peer.py.
#include <gtest/gtest.h>

#include "experiments/training/optimization.h"
#include "tests/models/recipe_peer.h"

namespace angiotrain {
namespace {

TEST(AdamAgainstTorch, DefaultsAndAFiveStepTrajectoryMatchTorchOptimAdam) {
  const std::string dir = testing::RecipePeerOutput({"adam"});
  ASSERT_FALSE(dir.empty());
  const auto lines = testing::ReadPeerLines(dir + "/adam.txt");
  ASSERT_EQ(lines.size(), 12u);  // defaults, start, 5 x (grad, param)

  TrainConfig config;
  config.train.optimizer = "adam";
  config.train.lr = 2e-3;
  torch::Tensor p = torch::tensor(lines[1].second, torch::kDouble).to(torch::kFloat).requires_grad_();
  auto optimizer = MakeOptimizer(config, {p});
  // torch.optim.Adam's defaults: betas[0] betas[1] eps weight_decay amsgrad.
  ASSERT_EQ(lines[0].first, "defaults");
  const std::vector<double>& d = lines[0].second;
  ASSERT_EQ(d.size(), 5u);
  auto* adam = dynamic_cast<torch::optim::Adam*>(optimizer.get());
  ASSERT_NE(adam, nullptr) << "train.optimizer = adam did not make a torch::optim::Adam";
  auto& options = static_cast<torch::optim::AdamOptions&>(adam->param_groups()[0].options());
  EXPECT_NEAR(std::get<0>(options.betas()), d[0], 1e-9);
  EXPECT_NEAR(std::get<1>(options.betas()), d[1], 1e-9);
  EXPECT_NEAR(options.eps(), d[2], 1e-15);
  EXPECT_EQ(options.weight_decay(), d[3]);
  EXPECT_EQ(options.amsgrad(), d[4] != 0);
  for (int step = 0; step < 5; ++step) {
    const auto& grad = lines[2 + 2 * step];
    const auto& expected = lines[3 + 2 * step];
    ASSERT_EQ(grad.first, "grad");
    p.mutable_grad() = torch::tensor(grad.second, torch::kDouble).to(torch::kFloat);
    optimizer->step();
    torch::Tensor want = torch::tensor(expected.second, torch::kDouble);
    const double err = (p.detach().to(torch::kDouble) - want).abs().max().item<double>();
    EXPECT_LT(err, 1e-6) << "step " << step + 1 << ": ours " << p << " torch " << want;
  }
}

}  // namespace
}  // namespace angiotrain
