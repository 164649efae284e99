#include "apps/train/resume.h"

#include <fmt/format.h>

namespace pw::app {
namespace fs = std::filesystem;

LoadedModel load_resume_checkpoint(const fs::path& checkpoint) {
  const fs::path run = checkpoint.parent_path().empty() ? fs::path(".") : checkpoint.parent_path();
  try {
    return load_model_file(checkpoint.string());
  } catch (const Error& damage) {
    const fs::path best = run / "checkpoint-best.safetensors";
    if (checkpoint.filename() != "checkpoint-last.safetensors" || !fs::exists(best)) throw;
    std::string way_on;
    try {
      const LoadedModel b = load_model_file(best.string());
      way_on = fmt::format(
          "; the run's {} (end of epoch {}, step {}) is intact: resume from it with --resume {}",
          best.filename().string(), b.state.epoch, b.state.global_step, best.string());
    } catch (const Error& e) {
      way_on = fmt::format("; the run's {} cannot be used either: {}", best.filename().string(),
                           e.what());
    }
    // The loader's message names the file and the damage; the way on is added to it.
    fail("{}{}", damage.what(), way_on);
  }
}

}  // namespace pw::app
