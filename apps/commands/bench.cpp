#include "apps/commands/bench.h"

#include <cblas.h>
#include <omp.h>
#include <sys/resource.h>

#include <chrono>

#include "apps/commands/command.h"
#include "apps/precision.h"
#include "apps/train/trainer.h"
#include "core/allocator.h"
#include "core/autocast.h"
#include "core/autograd.h"
#include "data/loader.h"
#include "dist/buckets.h"
#include "models/vit.h"
#include "ops/gemm_bf16.h"
#include "ops/loss.h"
#include "ops/shape.h"
#include "optim/adam.h"

namespace pw::app {
namespace {

using Clock = std::chrono::steady_clock;

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

}  // namespace

double sgemm_gflops(std::int64_t n, int reps) {
  Generator g(0);
  Tensor a = randn({n, n}, g), b = randn({n, n}, g), c = empty({n, n});
  const auto ni = static_cast<int>(n);
  double best = 1e30;
  for (int r = 0; r < reps + 1; ++r) {
    const auto t = Clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ni, ni, ni, 1.0f, a.data<float>(), ni,
                b.data<float>(), ni, 0.0f, c.data<float>(), ni);
    const double s = std::chrono::duration<double>(Clock::now() - t).count();
    if (r > 0) best = std::min(best, s);  // the first call warms up the threads
  }
  return 2.0 * static_cast<double>(n * n * n) / best / 1e9;
}

double bf16_gemm_gflops(std::int64_t n, int reps) {
  Generator g(0);
  Tensor a = copy_contiguous(randn({n, n}, g), DType::BFloat16);
  Tensor b = copy_contiguous(randn({n, n}, g), DType::BFloat16);
  Tensor c = empty({n, n});
  gemm::GemmDesc d;
  d.M = d.N = d.K = n;
  d.a = d.b = d.c = {0, 0, n, 1};
  double best = 1e30;
  for (int r = 0; r < reps + 1; ++r) {
    const auto t = Clock::now();
    gemm::gemm_bf16(d, a.data<bfloat16>(), b.data<bfloat16>(), c.data<float>());
    const double s = std::chrono::duration<double>(Clock::now() - t).count();
    if (r > 0) best = std::min(best, s);  // the first call creates the primitive
  }
  return 2.0 * static_cast<double>(n * n * n) / best / 1e9;
}

nlohmann::ordered_json run_bench(const BenchOptions& o) {
  // Under mpirun each rank runs its share of the batch and the gradients are summed over the
  // ranks every step, as in `vit train`; the figures are those of the whole job.
  dist::Communicator& comm = dist::world();
  set_compute_threads(o.threads > 0 ? o.threads : dist::default_threads(comm));
  const bool print = comm.is_root() && !o.json;
  const PrecisionChoice precision = resolve_precision(o.precision);
  if (print) fmt::print("{}\n", describe(precision));
  models::ViTConfig cfg = models::apply_overrides(models::vit_preset(o.preset), o.model);
  Generator gen(0);
  models::VisionTransformer model(cfg, gen);
  optim::AdamWOptions ao;
  ao.weight_decay = 0.05;
  optim::AdamW opt(model.parameters(), ao);
  dist::GradientBuckets buckets(model.parameters());
  const auto [lo, hi] = data::shard_range(o.batch_size, comm.rank(), comm.size());
  const std::int64_t local = hi - lo;
  const Tensor x = copy_contiguous(
      slice(randn({o.batch_size, cfg.channels, cfg.image_size, cfg.image_size}, gen), 0, lo, hi));
  std::vector<float> labels;
  for (std::int64_t i = lo; i < hi; ++i) labels.push_back(static_cast<float>(i % cfg.num_classes));
  Tensor y = from_vector(labels, {local});
  // Every rank starts (and the last one ends) a timed loop together.
  auto sync = [&comm](const char* what) {
    const double nothing = 0;
    comm.allgather({&nothing, 1}, what);
  };

  double allreduce_s = 0;
  auto train_step = [&] {
    opt.zero_grad();
    if (local > 0) {
      Tensor loss;
      {
        AutocastGuard autocast(precision.bf16());
        loss = cross_entropy(model.forward(x), y, Reduction::Sum, 0.1);
      }
      loss.backward(full({}, 1.0 / static_cast<double>(o.batch_size)));  // the global mean
    }
    const auto t = Clock::now();
    buckets.allreduce(comm);
    allreduce_s += std::chrono::duration<double>(Clock::now() - t).count();
    opt.step();
  };
  model.train();
  for (std::int64_t i = 0; i < o.warmup; ++i) train_step();
  sync("the start of the timed training steps");
  allreduce_s = 0;
  auto t = Clock::now();
  for (std::int64_t i = 0; i < o.steps; ++i) train_step();
  const double train_s = std::chrono::duration<double>(Clock::now() - t).count();

  model.eval();
  double infer_s = 0;
  {
    NoGradGuard no_grad;
    AutocastGuard autocast(precision.bf16());
    for (std::int64_t i = 0; i < o.warmup && local > 0; ++i) model.forward(x);
    sync("the start of the timed inference");
    t = Clock::now();
    for (std::int64_t i = 0; i < o.steps && local > 0; ++i) model.forward(x);
    sync("the end of the timed inference");
    infer_s = std::chrono::duration<double>(Clock::now() - t).count();
  }
  const double images = static_cast<double>(o.batch_size * o.steps);
  const double flops = model.forward_flops();
  const double sgemm = sgemm_gflops();
  const double bf16_gemm = bf16_gemm_gflops();
  const double train_ips = images / train_s, infer_ips = images / infer_s;
  // A training step costs three forward passes: the forward and the two GEMMs per GEMM of backward.
  const double train_gflops = 3 * flops * train_ips / 1e9;
  nlohmann::ordered_json r{
      {"system", "patchwork"},
      {"preset", o.preset},
      {"precision", precision.precision},
      {"parameters", model.num_parameters()},
      {"batch_size", o.batch_size},
      {"ranks", comm.size()},
      {"threads", omp_get_max_threads()},
      {"train_images_per_sec", train_ips},
      {"infer_images_per_sec", infer_ips},
      {"gradient_allreduce_bytes", buckets.bytes()},
      {"allreduce_ms_per_step", 1e3 * allreduce_s / static_cast<double>(o.steps)},
      {"forward_gflop_per_image", flops / 1e9},
      {"train_gflops", train_gflops},
      {"infer_gflops", flops * infer_ips / 1e9},
      {"sgemm_gflops", sgemm},
      {"train_fraction_of_sgemm", train_gflops / (sgemm * comm.size())},
      {"bf16_gemm_gflops", bf16_gemm},
      {"bf16_gemm_implementation", gemm::gemm_bf16_implementation()},
      {"train_fraction_of_bf16_gemm", train_gflops / (bf16_gemm * comm.size())},
      {"peak_rss_mb", peak_rss_mb()},
      {"allocator_peak_mb", static_cast<double>(allocator_stats().peak_bytes_in_use) / 1048576.0}};
  if (!comm.is_root()) return r;
  if (o.json) {
    fmt::print("{}\n", r.dump());
  } else {
    for (auto& [k, v] : r.items()) fmt::print("{:>26}: {}\n", k, v.dump());
  }
  return r;
}

void add_bench_command(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* sub =
      app.add_subcommand("bench", "Training and inference throughput against the sgemm peak");
  sub->option_defaults()->always_capture_default();
  sub->add_option("--preset", o->preset, "Model preset")
      ->check(CLI::IsMember({"nano", "lite", "small"}));
  sub->add_option("--model", o->model, "Override a model config field, key=value");
  sub->add_option("-b,--batch-size", o->batch_size, "Batch size")->check(CLI::Range(1, 65536));
  sub->add_option("--threads", o->threads,
                  "Compute threads (0: all cores, shared by the ranks of this machine)")
      ->check(CLI::Range(0, 1024));
  sub->add_option("--steps", o->steps, "Timed steps")->check(CLI::Range(1, 1'000'000));
  sub->add_option("--warmup", o->warmup, "Untimed steps first")->check(CLI::Range(0, 1'000'000));
  add_precision_flag(*sub, o->precision);
  sub->add_flag("--json", o->json, "One JSON line instead of a table");
  when_chosen(*sub, [o] {
    run_bench(*o);
    return 0;
  });
}

}  // namespace pw::app
