#include "apps/commands/allreduce.h"

#include <algorithm>
#include <chrono>

#include "apps/commands/command.h"
#include "dist/buckets.h"
#include "models/vit.h"

namespace pw::app {

nlohmann::ordered_json run_allreduce(const AllreduceOptions& o) {
  dist::Communicator& comm = dist::world();
  const double timeout = comm.timeout();
  if (o.blocking) comm.set_timeout(0);
  const models::ViTConfig cfg = models::apply_overrides(models::vit_preset(o.preset), o.model);
  Generator gen(0);
  models::VisionTransformer model(cfg, gen);
  const std::vector<Tensor> params = model.parameters();
  // Gradients of the size of the weights, set again before every step (a step replaces them by
  // their sums).
  std::vector<Tensor> grads;
  for (const Tensor& p : params) grads.push_back(randn(p.shape(), gen));
  dist::GradientBuckets buckets(params, static_cast<std::size_t>(o.bucket_mb * 1048576.0));

  using Clock = std::chrono::steady_clock;
  std::vector<double> seconds;
  for (std::int64_t step = 0; step < o.warmup + o.steps; ++step) {
    for (std::size_t i = 0; i < params.size(); ++i) params[i].set_grad(grads[i]);
    const double nothing = 0;
    comm.allgather({&nothing, 1}, "the start of a timed allreduce");  // start together
    const auto t = Clock::now();
    buckets.allreduce(comm);
    const double s = std::chrono::duration<double>(Clock::now() - t).count();
    if (step >= o.warmup) seconds.push_back(s);
  }
  // The slowest rank's time of each step: the step is over when the last rank has its sums.
  const std::vector<double> all = comm.allgather(seconds, "the allreduce times");
  std::vector<double> step_s(seconds.size(), 0.0);
  for (int r = 0; r < comm.size(); ++r)
    for (std::size_t i = 0; i < seconds.size(); ++i)
      step_s[i] = std::max(step_s[i], all[r * seconds.size() + i]);
  std::sort(step_s.begin(), step_s.end());
  const double median = step_s[step_s.size() / 2];
  double mean = 0;
  for (double s : step_s) mean += s / static_cast<double>(step_s.size());
  const auto bytes = static_cast<double>(buckets.bytes());
  const double n = comm.size();
  // nccl-tests' conventions: algbw = bytes / time; busbw = algbw * 2 (n - 1) / n, the rate at
  // which a ring allreduce moves data in and out of each rank.
  const double algbw = median > 0 ? bytes / median / 1e9 : 0;
  nlohmann::ordered_json r{{"preset", o.preset},
                           {"parameters", model.num_parameters()},
                           {"ranks", comm.size()},
                           {"ranks_on_this_machine", comm.local_size()},
                           {"collective", o.blocking ? "MPI_Allreduce" : "MPI_Iallreduce, polled"},
                           {"buckets", buckets.num_buckets()},
                           {"bytes_per_step", buckets.bytes()},
                           {"ring_bytes_sent_per_rank", bytes * 2 * (n - 1) / n},
                           {"median_ms", 1e3 * median},
                           {"mean_ms", 1e3 * mean},
                           {"min_ms", 1e3 * step_s.front()},
                           {"max_ms", 1e3 * step_s.back()},
                           {"algbw_gb_per_s", algbw},
                           {"busbw_gb_per_s", algbw * 2 * (n - 1) / n}};
  comm.set_timeout(timeout);
  if (!comm.is_root()) return r;
  if (o.json) {
    fmt::print("{}\n", r.dump());
  } else {
    for (auto& [k, v] : r.items()) fmt::print("{:>24}: {}\n", k, v.dump());
  }
  return r;
}

void add_allreduce_command(CLI::App& app) {
  auto o = std::make_shared<AllreduceOptions>();
  CLI::App* sub = app.add_subcommand(
      "allreduce", "Time a preset's gradient allreduce over the ranks of an mpirun job");
  sub->option_defaults()->always_capture_default();
  sub->add_option("--preset", o->preset, "Model preset")
      ->check(CLI::IsMember({"nano", "lite", "small"}));
  sub->add_option("--model", o->model, "Override a model config field, key=value");
  sub->add_option("--steps", o->steps, "Timed allreduces")->check(CLI::Range(1, 1'000'000));
  sub->add_option("--warmup", o->warmup, "Untimed allreduces first")
      ->check(CLI::Range(0, 1'000'000));
  sub->add_option("--bucket-mb", o->bucket_mb, "Bucket size in MiB")
      ->check(CLI::PositiveNumber)
      ->check(CLI::Range(0.0, 65536.0));
  sub->add_flag("--blocking", o->blocking,
                "Use MPI's blocking MPI_Allreduce (no --dist-timeout) instead of the polled one");
  sub->add_flag("--json", o->json, "One JSON line instead of a table");
  when_chosen(*sub, [o] {
    run_allreduce(*o);
    return 0;
  });
}

}  // namespace pw::app
