// angiotrain_models_bench: seconds per forward+backward step of an EfficientNet on the CPU, the
// C++ side of bench/models_bench.sh (the Python peer is bench/models_bench_peer.py).
// Usage: angiotrain_models_bench [--variant b0] [--batch 8] [--channels 8] [--resolution 256]
//                                [--threads 1] [--steps 5] [--warmup 1]
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "models/efficientnet.h"
#include "models/heads.h"

int main(int argc, char** argv) {
  std::string variant = "b0";
  int batch = 8, channels = 8, resolution = 256, threads = 1, steps = 5, warmup = 1;
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
  model->train();
  torch::Tensor x = torch::rand({batch, channels, resolution, resolution});
  torch::Tensor y = torch::randint(0, 2, {batch, config.num_outputs}).to(torch::kFloat);

  // Wall time, and the process's CPU time (all threads), which a busy shared machine disturbs
  // less than wall time.
  std::vector<double> wall, cpu;
  for (int step = 0; step < warmup + steps; ++step) {
    auto start = std::chrono::steady_clock::now();
    std::clock_t cpu_start = std::clock();
    model->zero_grad(/*set_to_none=*/true);
    torch::Tensor loss = angiotrain::BceWithLogitsLoss(model->forward(x), y);
    loss.backward();
    if (step < warmup) continue;
    wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    cpu.push_back(static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC);
  }
  std::sort(wall.begin(), wall.end());
  std::sort(cpu.begin(), cpu.end());
  std::printf("angiotrain %s batch %d channels %d %dx%d threads %d: median %.3f s/step, min %.3f, cpu %.3f s/step\n",
              variant.c_str(), batch, channels, resolution, resolution, threads, wall[wall.size() / 2], wall.front(),
              cpu[cpu.size() / 2]);
  return 0;
}
