#include "data/locate.h"

#include <sys/wait.h>

#include <cstdlib>

#include "core/error.h"
#include "data/cifar10.h"

namespace pw::data {

namespace fs = std::filesystem;

namespace {
fs::path& repository_dir() {
  static fs::path dir;
  return dir;
}
}  // namespace

void set_repository_dir(fs::path dir) {
  repository_dir() = std::move(dir);
}

LocateOptions default_locate_options(const std::optional<fs::path>& data_arg,
                                     const CifarLayout& layout) {
  LocateOptions o;
  o.explicit_path = data_arg;
  if (const char* env = std::getenv(layout.env_var.c_str()); env != nullptr && env[0] != '\0') {
    o.env_dir = fs::path(env);
  }
  o.source_dir = repository_dir();
  std::error_code ec;
  o.cwd = fs::current_path(ec);
  return o;
}

namespace {

// Quotes a path for /bin/sh: inside single quotes only ' itself needs care.
std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

bool same_place(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  return fs::weakly_canonical(a, ec) == fs::weakly_canonical(b, ec);
}

}  // namespace

DataLocation locate_cifar10(const LocateOptions& o) {
  return locate_cifar(o, cifar10_layout());
}

DataLocation locate_cifar(const LocateOptions& o, const CifarLayout& layout) {
  const std::string& title = layout.title;
  const auto resolve = [&](const fs::path& p) { return resolve_cifar_source(p, layout); };
  const std::string expected =
      fmt::format("expected the .bin files, {}/ or {}", layout.folder, layout.archive);
  // An explicit choice that does not hold the data is an error rather than a silent fallback:
  // training on other data than asked for would be worse than stopping.
  if (o.explicit_path) {
    auto found = resolve(*o.explicit_path);
    PW_CHECK(found, "[data] --data {}: no {} there ({})", o.explicit_path->string(), title,
             expected);
    return {*found, "--data"};
  }
  if (o.env_dir) {
    auto found = resolve(*o.env_dir);
    PW_CHECK(found, "[data] ${}={}: no {} there ({})", layout.env_var, o.env_dir->string(), title,
             expected);
    return {*found, "$" + layout.env_var};
  }

  std::vector<std::pair<fs::path, std::string>> places;
  auto add = [&](const fs::path& p, const std::string& how) {
    if (p.empty()) return;
    for (const auto& [q, _] : places)
      if (same_place(p, q)) return;
    places.emplace_back(p, how);
  };
  add(o.source_dir.empty() ? fs::path() : o.source_dir / "data", "repository data/");
  add(o.cwd.empty() ? fs::path() : o.cwd / "data", "./data");
  // The shared archive sits in shared/data/ beside the checkout; a git worktree is nested one
  // or two levels deeper (e.g. /work/wt/<name>), so the parents of the parent are tried too.
  for (const auto& [base, what] : {std::pair{o.source_dir, std::string("the repository")},
                                   std::pair{o.cwd, std::string("the working directory")}}) {
    if (base.empty()) continue;
    fs::path up = base;
    for (int level = 1; level <= 3; ++level) {
      up /= "..";
      add(up / "shared" / "data",
          level == 1 ? "shared archive next to " + what
                     : fmt::format("shared archive {} levels above {}", level, what));
    }
  }

  std::string looked;
  for (const auto& [p, how] : places) {
    if (auto found = resolve(p)) return {*found, how};
    looked += fmt::format("\n  {} ({}): not found", p.string(), how);
  }

  if (!o.allow_download) {
    pw::fail("[data] {} not found; looked in:{}\n  download: disabled", title, looked);
  }
  const fs::path script = !o.download_script.empty()
                              ? o.download_script
                              : o.source_dir / "scripts" / layout.download_script;
  const fs::path dest = (o.source_dir.empty() ? o.cwd : o.source_dir) / "data";
  PW_CHECK(fs::is_regular_file(script),
           "[data] {} not found; looked in:{}\n  download: no script at {}", title, looked,
           script.string());
  const std::string command =
      fmt::format("sh {} {}", shell_quote(script.string()), shell_quote(dest.string()));
  const int status = std::system(command.c_str());
  const int code = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  PW_CHECK(code == 0,
           "[data] {} not found; looked in:{}\n  download: `{}` failed (exit code {}); "
           "pass --data or set {}",
           title, looked, command, code, layout.env_var);
  auto found = resolve(dest);
  PW_CHECK(found, "[data] {} succeeded but {} still holds no {}", command, dest.string(), title);
  return {*found, fmt::format("downloaded by {}", script.string())};
}

}  // namespace pw::data
