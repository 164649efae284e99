// Kills and signals (issue 13): `vit train` killed with SIGKILL at seeded moments (inside
// checkpoint writes too) always leaves a checkpoint that loads, from which --resume ends with
// the uninterrupted run's weights; SIGTERM during an evaluation stops the run with exit code
// 130 and a checkpoint; a second signal ends the process at once; the stop flag is polled while
// reading the data set, waiting for batches and evaluating.
#include <catch2/catch.hpp>
#include <chrono>
#include <map>

#include "apps/evaluate.h"
#include "apps/weights.h"
#include "cifar_fixture.h"
#include "core/interrupt.h"
#include "data/cifar10.h"
#include "data/loader.h"
#include "vit_process.h"

using namespace pw;
using namespace pw::app;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

std::map<std::string, std::vector<float>> weights_of(const fs::path& file) {
  std::map<std::string, std::vector<float>> out;
  for (const auto& [name, t] : load_model_file(file.string()).weights) out[name] = t.to_vector();
  return out;
}

std::vector<fs::path> temporaries_in(const fs::path& dir) {
  std::vector<fs::path> found;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) found.push_back(e.path());
  return found;
}

}  // namespace

TEST_CASE("a second signal ends the process at once with exit code 130", "[signals]") {
  const pid_t child = ::fork();
  if (child == 0) {
    StopOnSignals signals;
    ::raise(SIGINT);  // the first: a request, the process goes on
    if (!stop_requested()) ::_exit(3);
    ::raise(SIGINT);  // the second: _exit(130) inside the handler, nothing after it runs
    ::_exit(4);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 130);
}

TEST_CASE("the stop flag is seen while reading data, loading batches and evaluating", "[signals]") {
  testing::TempDir tmp("stop-flag");
  testing::write_synthetic_cifar(tmp.path / "data", 20, 20);
  const data::Dataset train = data::read_cifar10(tmp.path / "data", data::Split::Train);
  models::ViTConfig c;
  c.image_size = 32, c.patch_size = 8, c.dim = 8, c.depth = 1, c.heads = 2, c.mlp_dim = 8;
  Generator gen(0);
  models::VisionTransformer model(c, gen);
  ModelInfo info;
  info.config = c;
  const auto predict = [&] { return predict_split(model, info, train, 4, 1, false, Tta::None); };
  {
    StopOnSignals signals;  // clears the flag when done
    request_stop();
    CHECK_THROWS_AS(data::read_cifar10(tmp.path / "data", data::Split::Train), Interrupted);
    CHECK_THROWS_AS(predict(), Interrupted);
    data::LoaderConfig lc;
    lc.batch_size = 4;
    data::Loader loader(train, lc);
    loader.start_epoch(0);
    CHECK_THROWS_AS(loader.next(), Interrupted);
  }
  CHECK_FALSE(stop_requested());
  CHECK(predict().labels.size() == 20);
}

TEST_CASE("SIGTERM during an evaluation stops the run with exit code 130 and a checkpoint",
          "[signals]") {
  testing::TempDir tmp("sigterm-eval");
  // Few training images and many test images: the evaluation is most of the run.
  testing::write_synthetic_cifar(tmp.path / "data", 16, 3000);
  const fs::path run = tmp.path / "runs" / "run";
  const std::vector<std::string> args =
      testing::train_args(tmp.path.string(), "run", {"depth=2", "dim=64", "heads=2", "mlp_dim=128"},
                          {"--epochs", "1", "--batch-size", "16"});
  // The epoch's only step, then a stop: the checkpoint's next task is the evaluation.
  auto first = args;
  first.insert(first.end(), {"--stop-after-steps", "1"});
  REQUIRE(testing::run_vit(first).exit_code == 0);

  // Resumed, the run evaluates at once; SIGTERM comes as soon as the model is set up.
  testing::VitCall call;
  call.args = {"train", "--resume", run.string()};
  bool sent = false;
  call.on_stdout_line = [&](const std::string& line, pid_t pid) {
    if (!sent && line.rfind("model:", 0) == 0) {
      ::kill(pid, SIGTERM);
      sent = true;
    }
  };
  const testing::VitRun r = testing::run_vit(call);
  INFO(r.out << r.err);
  REQUIRE(sent);
  CHECK(r.exit_code == 130);
  CHECK_THAT(r.out, Contains("stopped at epoch 1"));
  // Stopped inside the evaluation: no epoch record, no summary, the checkpoint as after step 1.
  CHECK(testing::records(run, "epoch").empty());
  CHECK(testing::records(run, "summary").empty());
  const LoadedModel ckpt = load_model_file((run / "checkpoint-last.safetensors").string());
  CHECK(ckpt.state.global_step == 1);
  CHECK(ckpt.state.epoch == 0);
  // And the run goes on from there.
  const testing::VitRun done = testing::run_vit({"train", "--resume", run.string()});
  INFO(done.out << done.err);
  CHECK(done.exit_code == 0);
  CHECK(testing::records(run, "epoch").size() == 1);
}

TEST_CASE(
    "SIGKILL at seeded moments, in checkpoint writes too: the last checkpoint loads and "
    "--resume ends with the uninterrupted run's weights",
    "[signals]") {
  testing::TempDir tmp("kill");
  testing::write_synthetic_cifar(tmp.path / "data", 24, 8);
  const auto args = [&](const std::string& name) {
    return testing::train_args(tmp.path.string(), name,
                               {"depth=1", "dim=16", "heads=2", "mlp_dim=16"},
                               {"--epochs", "3", "--batch-size", "8", "--dropout", "0.1"});
  };
  const auto started = std::chrono::steady_clock::now();
  const testing::VitRun reference = testing::run_vit(args("reference"));
  REQUIRE(reference.exit_code == 0);
  const double run_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const auto expected = weights_of(tmp.path / "runs" / "reference" / "model.safetensors");

  // The moments: inside the first and second writes of checkpoint-last (midway, and after the
  // whole file but before its rename), inside checkpoint-best and model.safetensors, and at
  // seeded random times of the run.
  struct Moment {
    std::string kill_in_write;  // PATCHWORK_KILL_IN_WRITE, or empty for a timed SIGKILL
    double after_seconds = 0;
  };
  const std::string last_name = "checkpoint-last.safetensors";
  std::vector<Moment> moments{{"1:3000:" + last_name},
                              {"2:3000:" + last_name},
                              {"3:100000000:" + last_name},
                              {"1:500:checkpoint-best.safetensors"},
                              {"1:1000:model.safetensors"}};
  Generator gen(13);
  for (int i = 0; i < 3; ++i) moments.push_back({"", run_seconds * (0.1 + 0.8 * gen.uniform())});

  for (std::size_t m = 0; m < moments.size(); ++m) {
    std::string name = fmt::format("killed-{}", m);
    fs::path run = tmp.path / "runs" / name;
    INFO("moment " << m << ": " << moments[m].kill_in_write << " " << moments[m].after_seconds);
    testing::VitCall call;
    call.args = args(name);
    if (!moments[m].kill_in_write.empty())
      call.env["PATCHWORK_KILL_IN_WRITE"] = moments[m].kill_in_write;
    else
      call.kill_after_seconds = moments[m].after_seconds;  // it may have finished by then
    const testing::VitRun killed = testing::run_vit(call);
    if (!moments[m].kill_in_write.empty()) CHECK(killed.signal == SIGKILL);

    // Whatever the moment, the checkpoint there loads, and --resume finishes the run; a kill
    // before the first checkpoint was complete leaves nothing to resume: the run starts over.
    const fs::path last = run / last_name;
    testing::VitRun finished;
    if (fs::exists(last)) {
      CHECK_NOTHROW(load_model_file(last.string()));
      finished = testing::run_vit({"train", "--resume", run.string()});
    } else {
      name += "-again";
      run = tmp.path / "runs" / name;
      finished = testing::run_vit(args(name));
    }
    INFO(finished.out << finished.err);
    REQUIRE(finished.exit_code == 0);
    CHECK_THAT(finished.out, !Contains("-100.00%") && !Contains("final unknown"));
    CHECK(temporaries_in(run).empty());
    CHECK(weights_of(run / "model.safetensors") == expected);
  }
}
