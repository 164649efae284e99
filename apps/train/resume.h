// Reading the checkpoint that `vit train --resume` continues from: stale temporary files of
// killed writes are removed first, and a damaged checkpoint-last names the way on (the run's
// checkpoint-best) instead of only failing.
#pragma once
#include <filesystem>

#include "apps/weights.h"

namespace pw::app {

// Loads `checkpoint` (a checkpoint file in a run folder) for a resume; errors name the file,
// the damage and, for checkpoint-last, whether checkpoint-best loads and how to resume from it.
LoadedModel load_resume_checkpoint(const std::filesystem::path& checkpoint);

}  // namespace pw::app
