// Finding CIFAR-10 or CIFAR-100 on this machine: an explicit path, $CIFAR10_DIR (or
// $CIFAR100_DIR), the repository's data/, ./data, the shared archive next to the repository, and
// finally a download script.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "data/cifar10.h"

namespace pw::data {

// Where the data was found (a folder or an archive that read_cifar takes) and how.
struct DataLocation {
  std::filesystem::path path;
  std::string how;  // for the log, e.g. "--data", "$CIFAR10_DIR", "repository data/"
};

// The places to look, in order. default_locate_options() fills them for the `vit` program;
// tests set them by hand so that nothing depends on the machine.
struct LocateOptions {
  std::optional<std::filesystem::path> explicit_path;  // --data: must hold the data if given
  std::optional<std::filesystem::path> env_dir;        // $CIFAR10_DIR: must hold it if set
  std::filesystem::path source_dir;                    // the repository (set_repository_dir)
  std::filesystem::path cwd;                           // the working directory
  bool allow_download = true;
  std::filesystem::path download_script;  // run as `script <dest>`; default source_dir/scripts/
};

// The repository whose data/ folder, shared archive and download script default_locate_options
// names: none until the program sets one (`vit` sets the checkout it was built from).
void set_repository_dir(std::filesystem::path dir);

// Options from the environment: the layout's variable ($CIFAR10_DIR or $CIFAR100_DIR), the
// repository set by set_repository_dir, the cwd.
LocateOptions default_locate_options(const std::optional<std::filesystem::path>& data_arg,
                                     const CifarLayout& layout = cifar10_layout());

// Looks in every place of `options` in order for the release of `layout` and returns the first
// hit; when all fail, the pw::Error lists each place it looked.
DataLocation locate_cifar(const LocateOptions& options, const CifarLayout& layout);
// locate_cifar for CIFAR-10.
DataLocation locate_cifar10(const LocateOptions& options);

}  // namespace pw::data
