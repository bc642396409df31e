// Every subcommand of the angiotrain binary registers itself on the CLI11 app here.
// One file per command (command_<name>.cpp); each parses flags into its layer's options struct
// and calls that layer. Launcher code stays thin: no logic that a test would need to reach.
#pragma once

#include <CLI/CLI.hpp>

namespace angiotrain {

// One declaration per command, in the order of `angiotrain --help`.
void AddSynthCommand(CLI::App& app);
void AddIngestCommand(CLI::App& app);
void AddInspectCommand(CLI::App& app);
void AddTrainCommand(CLI::App& app);
void AddPredictCommand(CLI::App& app);
void AddEvaluateCommand(CLI::App& app);
void AddModelCommand(CLI::App& app);
void AddSlurmCommand(CLI::App& app);
void AddSweepCommand(CLI::App& app);
void AddExportCommand(CLI::App& app);
void AddReportCommand(CLI::App& app);
void AddExplainCommand(CLI::App& app);  // needs OpenCV (drawing)

}  // namespace angiotrain
