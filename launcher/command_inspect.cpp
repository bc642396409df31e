// `angiotrain inspect`: a summary of a volume file (rows, resolution, labels, provenance).
#include <mpi.h>

#include <cstdio>

#include "datasets/kium_schema.h"
#include "datasets/volume_file.h"
#include "launcher/commands.h"

namespace angiotrain {

void AddInspectCommand(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("inspect", "Summarise a volume file: patients, resolution, label counts, provenance");
  cmd->add_option("volume", *path, "Volume file (.h5) written by ingest")->required();
  cmd->callback([path] {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank != 0) return;
    VolumeReader v(*path, MPI_COMM_NULL);
    std::printf("%s\n", path->c_str());
    std::printf("  patients     %lld\n", static_cast<long long>(v.rows()));
    std::printf("  images       uint8 [%lld, %d, %d, %d]\n", static_cast<long long>(v.rows()), kNumViews,
                v.resolution(), v.resolution());
    std::printf("  source       %s\n", v.provenance().source.c_str());
    std::printf("  labels file  %s\n", v.provenance().labels_file.empty() ? "(none)" : v.provenance().labels_file.c_str());
    std::printf("  created      %s by %s\n", v.provenance().created.c_str(), v.provenance().tool.c_str());
    std::printf("  skipped      %lld\n", static_cast<long long>(v.provenance().skipped));
    if (!v.has_labels()) {
      std::printf("  labels       none\n");
      return;
    }
    long positives = 0;
    for (uint8_t a : v.aneurysm()) positives += a;
    std::printf("  Aneurysm     %ld positive of %lld (%.1f%%)\n", positives, static_cast<long long>(v.rows()),
                v.rows() ? 100.0 * positives / v.rows() : 0.0);
    std::printf("  locations    ");
    for (int k = 0; k < kNumLocations; ++k) {
      long count = 0;
      for (int64_t r = 0; r < v.rows(); ++r) count += v.locations()[r * kNumLocations + k];
      std::printf("%s=%ld%s", LocationNames()[k].c_str(), count, k + 1 < kNumLocations ? " " : "\n");
    }
  });
}

}  // namespace angiotrain
