// angiotrain_models_bench: seconds per training step (forward+backward, optionally the Adam
// update) of an EfficientNet, the C++ side of bench/models_bench.sh and scripts/gpu-check.sh (the
// Python peer is bench/models_bench_peer.py, same flags).
// Usage: angiotrain_models_bench [--variant b0] [--batch 8] [--channels 8] [--resolution 256]
//                                [--threads 1] [--steps 5] [--warmup 1] [--device cpu|cuda]
//                                [--precision fp32|bf16] [--optimizer none|adam]
// On CUDA the model and input are channels_last and each step is timed to a device synchronise.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "models/autocast.h"
#include "models/efficientnet.h"
#include "models/heads.h"

int main(int argc, char** argv) {
  std::string variant = "b0";
  int batch = 8, channels = 8, resolution = 256, threads = 1, steps = 5, warmup = 1;
  std::string device_name = "cpu", precision = "fp32", optimizer_name = "none";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const char* v = argv[i + 1];
    if (flag == "--variant") variant = v;
    else if (flag == "--batch") batch = std::atoi(v);
    else if (flag == "--channels") channels = std::atoi(v);
    else if (flag == "--resolution") resolution = std::atoi(v);
    else if (flag == "--threads") threads = std::atoi(v);
    else if (flag == "--steps") steps = std::atoi(v);
    else if (flag == "--warmup") warmup = std::atoi(v);
    else if (flag == "--device") device_name = v;
    else if (flag == "--precision") precision = v;
    else if (flag == "--optimizer") optimizer_name = v;
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  torch::set_num_threads(threads);
  torch::manual_seed(0);
  angiotrain::EfficientNetConfig config = angiotrain::EfficientNetConfig::ForVariant(variant);
  config.in_channels = channels;
  config.num_outputs = angiotrain::TaskOutputs(angiotrain::Task::kMultitask);
  angiotrain::EfficientNet model(config);
  const torch::Device device(device_name);
  const bool cuda = device.is_cuda();
  const auto dtype = angiotrain::ParsePrecision(precision, device);
  model->to(device);
  if (cuda) {
    angiotrain::ToChannelsLast(*model);
    at::globalContext().setBenchmarkCuDNN(true);
  }
  model->train();
  torch::Tensor x = torch::rand({batch, channels, resolution, resolution}).to(device);
  if (cuda) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
  torch::Tensor y = torch::randint(0, 2, {batch, config.num_outputs}).to(torch::kFloat).to(device);
  std::unique_ptr<torch::optim::Adam> optimizer;
  if (optimizer_name == "adam") optimizer = std::make_unique<torch::optim::Adam>(model->parameters(), 1e-4);

  // Wall time, and the process's CPU time (all threads), which a busy shared machine disturbs
  // less than wall time.
  std::vector<double> wall, cpu;
  for (int step = 0; step < warmup + steps; ++step) {
    auto start = std::chrono::steady_clock::now();
    std::clock_t cpu_start = std::clock();
    model->zero_grad(/*set_to_none=*/true);
    torch::Tensor logits;
    {
      angiotrain::AutocastScope amp(device.type(), dtype);
      logits = model->forward(x);
    }
    torch::Tensor loss = angiotrain::BceWithLogitsLoss(logits.to(torch::kFloat), y);
    loss.backward();
    if (optimizer) optimizer->step();
    if (cuda) torch::cuda::synchronize();
    if (step < warmup) continue;
    wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    cpu.push_back(static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC);
  }
  std::sort(wall.begin(), wall.end());
  std::sort(cpu.begin(), cpu.end());
  const double median = wall[wall.size() / 2];
  std::printf("angiotrain %s batch %d channels %d %dx%d threads %d %s %s optimizer %s: median %.4f s/step, min %.4f, "
              "cpu %.3f s/step, %.1f images/s\n",
              variant.c_str(), batch, channels, resolution, resolution, threads, device_name.c_str(), precision.c_str(),
              optimizer_name.c_str(), median, wall.front(), cpu[cpu.size() / 2], batch / median);
  return 0;
}
