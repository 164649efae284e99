// Reading the checkpoint that `vit train --resume` continues from: a damaged checkpoint-last
// names the way on (the run's checkpoint-best) instead of only failing. (The trainer removes the
// stale temporary files of killed writes first: io/file_io.h remove_stale_temporaries.)
#pragma once
#include <filesystem>

#include "apps/weights.h"

namespace pw::app {

// Loads `checkpoint` (a checkpoint file in a run folder) for a resume; errors name the file,
// the damage and, for checkpoint-last, whether checkpoint-best loads and how to resume from it.
LoadedModel load_resume_checkpoint(const std::filesystem::path& checkpoint);

}  // namespace pw::app
