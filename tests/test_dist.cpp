// Data parallelism (dist/): the pieces in one process — batch shards, per-sample random streams,
// gradient buckets, the rank checks — and, under mpirun, whole `vit train` jobs on synthetic
// CIFAR-format files: 1 process against 2 and 3 ranks, resume across rank counts, a rank with
// bad input, a rank that stops answering, a rank killed. The mpirun tests skip (with a warning)
// when the build has no MPI or the machine no mpirun.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>

#include "apps/weights.h"
#include "cifar_fixture.h"
#include "core/autograd.h"
#include "data/cifar10.h"
#include "data/loader.h"
#include "dist/buckets.h"
#include "dist/communicator.h"
#include "models/vit.h"
#include "ops/attention.h"
#include "ops/dropout.h"
#include "ops/shape.h"
#include "subprocess.h"

using namespace pw;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

// ---------------------------------------------------------------- shards of a batch

TEST_CASE("shard_range splits a batch by position, evenly and in rank order", "[dist]") {
  for (std::int64_t n : {0, 1, 2, 5, 9, 128})
    for (int ranks : {1, 2, 3, 4, 7}) {
      std::int64_t next = 0, smallest = n, largest = 0;
      for (int r = 0; r < ranks; ++r) {
        const auto [b, e] = data::shard_range(n, r, ranks);
        CHECK(b == next);
        smallest = std::min(smallest, e - b);
        largest = std::max(largest, e - b);
        next = e;
      }
      CHECK(next == n);
      CHECK(largest - smallest <= 1);
    }
  CHECK(data::shard_range(9, 0, 2) == std::pair<std::int64_t, std::int64_t>{0, 5});
  CHECK(data::shard_range(9, 1, 2) == std::pair<std::int64_t, std::int64_t>{5, 9});
  CHECK(data::shard_range(2, 2, 3) == std::pair<std::int64_t, std::int64_t>{2, 2});
  CHECK_THROWS_WITH(data::shard_range(4, 2, 2), Contains("rank 2 of 2"));
}

namespace {

data::Dataset random_dataset(std::int64_t n) {
  Generator g(11);
  data::Dataset d;
  d.images.resize(static_cast<std::size_t>(n * data::kImageBytes));
  for (auto& v : d.images) v = static_cast<std::uint8_t>(g.randint(256));
  for (std::int64_t i = 0; i < n; ++i) d.labels.push_back(static_cast<std::uint8_t>(i * 7 % 10));
  d.class_names = data::default_class_names();
  return d;
}

// Rows [b, e) of a (B, ...) tensor, as values.
std::vector<float> rows(const Tensor& t, std::int64_t b, std::int64_t e) {
  return copy_contiguous(slice(t, 0, b, e)).to_vector();
}

}  // namespace

TEST_CASE("each rank's part of a batch is exactly those rows of the one-process batch",
          "[dist][data]") {
  // 50 = 6 * 8 + 2: the last batch of 2 leaves the third of 3 ranks without a sample.
  const data::Dataset d = random_dataset(50);
  data::LoaderConfig config;
  config.batch_size = 8;
  config.seed = 99;
  config.num_workers = 1;
  config.augment.augment = data::AugmentPolicy::RandAugment;
  config.augment.cutout_size = 6;
  config.augment.label_smoothing = 0.1;
  SECTION("mixup and cutmix") {
    config.augment.mixup_alpha = 0.8;
    config.augment.cutmix_alpha = 1.0;
  }
  SECTION("autoaugment, no mixing") {
    config.augment.augment = data::AugmentPolicy::AutoAugment;
  }

  const std::int64_t epoch = 2;
  const auto order = data::epoch_order(d.size(), true, config.seed, epoch);
  for (std::int64_t b = 0; b < data::num_batches(d.size(), config.batch_size, false); ++b) {
    const data::Batch whole = data::make_batch(d, config, order, epoch, b);
    const std::int64_t G = whole.global_size;
    CHECK(G == static_cast<std::int64_t>(whole.labels.size()));
    for (int ranks : {2, 3}) {
      std::int64_t covered = 0;
      for (int r = 0; r < ranks; ++r) {
        data::LoaderConfig c = config;
        c.rank = r;
        c.ranks = ranks;
        const data::Batch part = data::make_batch(d, c, order, epoch, b);
        const auto [lo, hi] = data::shard_range(G, r, ranks);
        INFO("batch " << b << ", rank " << r << " of " << ranks);
        REQUIRE(part.first == lo);
        REQUIRE(part.global_size == G);
        REQUIRE(static_cast<std::int64_t>(part.labels.size()) == hi - lo);
        CHECK(part.images.shape()[0] == hi - lo);
        CHECK(part.indices ==
              std::vector<std::int64_t>(whole.indices.begin() + lo, whole.indices.begin() + hi));
        CHECK(part.labels ==
              std::vector<std::int64_t>(whole.labels.begin() + lo, whole.labels.begin() + hi));
        CHECK(part.images.to_vector() == rows(whole.images, lo, hi));
        REQUIRE(part.soft_targets.defined() == whole.soft_targets.defined());
        if (whole.soft_targets.defined())
          CHECK(part.soft_targets.to_vector() == rows(whole.soft_targets, lo, hi));
        covered += hi - lo;
      }
      CHECK(covered == G);
    }
  }
}

TEST_CASE("a sample's augmentation depends on (seed, epoch, record), not on its batch",
          "[dist][data]") {
  const data::Dataset d = random_dataset(12);
  data::LoaderConfig config;
  config.seed = 5;
  config.augment.augment = data::AugmentPolicy::RandAugment;
  const auto order = data::epoch_order(d.size(), true, config.seed, 0);
  config.batch_size = 12;
  const data::Batch one = data::make_batch(d, config, order, 0, 0);
  config.batch_size = 5;  // the same epoch order cut into other batches
  std::vector<float> concatenated;
  for (std::int64_t b = 0; b < 3; ++b) {
    const auto v = data::make_batch(d, config, order, 0, b).images.to_vector();
    concatenated.insert(concatenated.end(), v.begin(), v.end());
  }
  CHECK(concatenated == one.images.to_vector());
  // Another epoch or seed draws other augmentations for the same record.
  CHECK(data::sample_seed(5, 0, 3) != data::sample_seed(5, 1, 3));
  CHECK(data::sample_seed(5, 0, 3) != data::sample_seed(6, 0, 3));
  CHECK(data::sample_seed(5, 0, 3) != data::sample_seed(5, 0, 4));
}

// ---------------------------------------------------------------- per-sample random streams

TEST_CASE("inside SampleStreams, masks are per sample: a split batch draws the whole one's",
          "[dist][dropout]") {
  Generator g(3);
  const std::int64_t B = 5;
  const Tensor x = randn({B, 4, 6}, g);
  const Tensor qkv = randn({B, 7, 3 * 2 * 4}, g);  // (B, N, 3 * H * Dh), H = 2
  const std::uint64_t key = hash_seed({42, 7});
  // Three masked ops in one scope, as in a model's forward: dropout, drop_path, attention.
  auto ops = [&](const Tensor& xs, const Tensor& qkvs) {
    Generator unused(0);
    return std::vector<Tensor>{dropout(xs, 0.4, true, unused), drop_path(xs, 0.5, true, unused),
                               scaled_dot_product_attention_packed(qkvs, 2, Tensor(), false, 0.3,
                                                                   std::nullopt, false, unused)
                                   .output};
  };
  std::vector<Tensor> whole;
  {
    SampleStreams s(key, 0, B);
    whole = ops(x, qkv);
  }
  for (std::int64_t cut : {1, 2, 4}) {
    std::vector<Tensor> a, b;
    {
      SampleStreams s(key, 0, cut);
      a = ops(slice(x, 0, 0, cut), slice(qkv, 0, 0, cut));
    }
    {
      SampleStreams s(key, cut, B - cut);
      b = ops(slice(x, 0, cut, B), slice(qkv, 0, cut, B));
    }
    for (std::size_t k = 0; k < whole.size(); ++k) {
      INFO("op " << k << ", cut at " << cut);
      std::vector<float> joined = copy_contiguous(a[k]).to_vector();
      const auto second = copy_contiguous(b[k]).to_vector();
      joined.insert(joined.end(), second.begin(), second.end());
      CHECK(joined == copy_contiguous(whole[k]).to_vector());
    }
  }
  // The same op called twice in a scope draws two masks; another key draws others.
  {
    SampleStreams s(key, 0, B);
    Generator unused(0);
    const auto first = dropout(x, 0.5, true, unused).to_vector();
    CHECK(dropout(x, 0.5, true, unused).to_vector() != first);
  }
  {
    SampleStreams s(hash_seed({42, 8}), 0, B);
    Generator unused(0);
    CHECK(dropout(x, 0.4, true, unused).to_vector() != whole[0].to_vector());
  }
  // Outside a scope the op's generator is used again.
  Generator a(9), b(9);
  CHECK(dropout(x, 0.4, true, a).to_vector() == dropout(x, 0.4, true, b).to_vector());
  {
    SampleStreams s(key, 0, B + 1);
    CHECK_THROWS_WITH(
        dropout(x, 0.4, true, a),
        Contains("[dropout] draws per-sample masks over 5 rows") && Contains("has 6 samples"));
  }
}

TEST_CASE("a ViT with every dropout on gives each sample the same output in any split",
          "[dist][vit]") {
  models::ViTConfig cfg = models::vit_preset("nano");
  cfg.depth = 2;
  cfg.dim = 32;
  cfg.heads = 2;
  cfg.mlp_dim = 64;
  cfg.dropout = 0.2;
  cfg.attn_dropout = 0.2;
  cfg.emb_dropout = 0.2;
  cfg.drop_path = 0.3;
  Generator g(1);
  models::VisionTransformer model(cfg, g);
  model.train();
  const Tensor x = randn({6, 3, 32, 32}, g);
  const std::uint64_t key = hash_seed({1, 2, 3});
  NoGradGuard no_grad;
  auto forward = [&](std::int64_t b, std::int64_t e) {
    SampleStreams s(key, b, e - b);
    return model.forward(copy_contiguous(slice(x, 0, b, e))).to_vector();
  };
  const auto whole = forward(0, 6);
  auto split = forward(0, 4);
  const auto rest = forward(4, 6);
  split.insert(split.end(), rest.begin(), rest.end());
  REQUIRE(split.size() == whole.size());
  // Only the GEMMs' blocking may differ between batch sizes: float32 rounding, no more.
  for (std::size_t i = 0; i < whole.size(); ++i) CHECK(split[i] == Approx(whole[i]).margin(1e-5));
  // ...and the masks are on: without streams, the same rows give other outputs.
  CHECK(model.forward(copy_contiguous(slice(x, 0, 0, 4))).to_vector() !=
        std::vector<float>(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(4 * 10)));
}

// ---------------------------------------------------------------- buckets and rank checks

namespace {

// A job of `size` ranks seen from rank 0: the other ranks' contributions to an allreduce are
// `others` added element-wise; their allgather values are `peer_values`. It records every buffer
// it reduces.
class FakeCommunicator final : public dist::Communicator {
 public:
  explicit FakeCommunicator(int size) : size_(size) {}
  int rank() const override { return 0; }
  int size() const override { return size_; }
  int local_size() const override { return size_; }
  void allreduce_sum(std::span<float> data, std::string_view what) override {
    seen.emplace_back(data.begin(), data.end());
    names.emplace_back(what);
    for (auto& v : data) v += others;
  }
  std::vector<double> allgather(std::span<const double> mine, std::string_view) override {
    std::vector<double> all(mine.begin(), mine.end());
    for (int r = 1; r < size_; ++r) all.insert(all.end(), peer_values.begin(), peer_values.end());
    return all;
  }
  void broadcast(std::span<std::uint8_t>, int, std::string_view) override {}
  void set_timeout(double) override {}
  double timeout() const override { return 0; }
  [[noreturn]] void abort(int) override { throw Error("abort"); }

  float others = 0;
  std::vector<double> peer_values;
  std::vector<std::vector<float>> seen;
  std::vector<std::string> names;

 private:
  int size_;
};

}  // namespace

TEST_CASE("gradient buckets pack in reverse order and sum over the ranks", "[dist]") {
  // Three parameters of 6, 4 and 3 values; a bucket of 8 floats holds (c) then (b), then (a).
  std::vector<Tensor> p = {zeros({2, 3}).requires_grad_(), zeros({4}).requires_grad_(),
                           zeros({3}).requires_grad_()};
  dist::GradientBuckets buckets(p, 8 * sizeof(float));
  CHECK(buckets.num_buckets() == 2);
  CHECK(buckets.num_values() == 13 + 3);  // values and one flag per parameter
  CHECK(buckets.bytes() == 16 * sizeof(float));
  p[0].set_grad(from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3}));
  p[2].set_grad(from_vector(std::vector<float>{7, 8, 9}, {3}));
  // p[1] has no gradient here

  SECTION("one rank: nothing moves") {
    dist::LocalCommunicator local;
    buckets.allreduce(local);
    CHECK(p[0].grad().to_vector() == std::vector<float>{1, 2, 3, 4, 5, 6});
    CHECK_FALSE(p[1].grad().defined());
  }
  SECTION("another rank holding ones everywhere") {
    FakeCommunicator comm(2);
    comm.others = 1;
    buckets.allreduce(comm, "step 3");
    REQUIRE(comm.seen.size() == 2);
    // Bucket 1: p[2] then p[1] (zeros: no gradient here), flags 1 and 0; bucket 2: p[0], flag 1.
    CHECK(comm.seen[0] == std::vector<float>{7, 8, 9, 0, 0, 0, 0, 1, 0});
    CHECK(comm.seen[1] == std::vector<float>{1, 2, 3, 4, 5, 6, 1});
    CHECK(comm.names[0] == "step 3 (bucket 1 of 2)");
    CHECK(p[0].grad().to_vector() == std::vector<float>{2, 3, 4, 5, 6, 7});
    CHECK(p[1].grad().to_vector() == std::vector<float>{1, 1, 1, 1});  // the other rank's
    CHECK(p[2].grad().to_vector() == std::vector<float>{8, 9, 10});
    CHECK(p[0].grad().shape() == Shape{2, 3});
  }
  SECTION("no rank has a gradient: it stays undefined, as on one process") {
    FakeCommunicator comm(3);
    buckets.allreduce(comm);
    CHECK_FALSE(p[1].grad().defined());
    CHECK(p[2].grad().to_vector() == std::vector<float>{7, 8, 9});
  }
}

TEST_CASE("ranks must agree: require_same names the ranks that differ", "[dist]") {
  FakeCommunicator comm(3);
  const std::uint64_t value = 0x123456789abcdefULL;
  comm.peer_values = {static_cast<double>(value >> 32), static_cast<double>(value & 0xffffffffu)};
  CHECK_NOTHROW(dist::require_same(comm, value, "the weights"));
  comm.peer_values[1] += 1;
  CHECK_THROWS_AS(dist::require_same(comm, value, "the weights"), dist::CollectiveError);
  CHECK_THROWS_WITH(dist::require_same(comm, value, "the weights"),
                    Contains("the weights differs between ranks: rank(s) 1, 2 disagree"));
  comm.peer_values = {1.5, 2.5};
  const std::vector<double> mine = {0.25, 1};
  CHECK(dist::sum_over_ranks(comm, mine, "x") == std::vector<double>{3.25, 6});

  const std::vector<std::uint8_t> bytes(100, 7);
  auto other = bytes;
  other[99] = 8;
  CHECK(dist::hash_bytes(bytes.data(), 100) != dist::hash_bytes(other.data(), 100));
  CHECK(dist::hash_bytes(bytes.data(), 100) == dist::hash_bytes(bytes.data(), 100));
  CHECK(dist::hash_bytes(bytes.data(), 100, 1) != dist::hash_bytes(bytes.data(), 100, 2));
  CHECK(dist::hash_bytes(bytes.data(), 99) != dist::hash_bytes(bytes.data(), 100));
}

TEST_CASE("without an MPI launcher the world is one process", "[dist]") {
  CHECK_FALSE(dist::launched_by_mpi());
  CHECK(dist::world().size() == 1);
  CHECK(dist::world().rank() == 0);
  CHECK(dist::default_threads(dist::world()) == 0);  // all cores, as before
  const std::vector<double> v = {1, 2};
  CHECK(dist::world().allgather(v, "x") == v);
}

// ---------------------------------------------------------------- whole jobs under mpirun

namespace {

const char* const kVit = PATCHWORK_VIT_PATH;
const char* const kMpiexec = PATCHWORK_MPIEXEC;

// Whether mpirun jobs can run here; warns (the test then returns) when not.
bool mpi_available() {
  if (!dist::built_with_mpi()) {
    WARN(
        "skipped: this build has no MPI (CMake found no libopenmpi-dev, or PATCHWORK_MPI was OFF)");
    return false;
  }
  if (std::string(kMpiexec).empty() || !fs::exists(kMpiexec)) {
    WARN("skipped: mpirun was not found");
    return false;
  }
  return true;
}

// `mpirun -np ranks vit train <args>` (ranks = 0: vit alone, without mpirun), one thread a rank.
std::vector<std::string> command(int ranks, const std::vector<std::string>& args) {
  std::vector<std::string> c;
  if (ranks > 0)
    c = {kMpiexec,
         "--allow-run-as-root",
         "--oversubscribe",
         "--bind-to",
         "none",
         "-x",
         "OMP_NUM_THREADS=1",
         "-np",
         std::to_string(ranks)};
  c.push_back(kVit);
  c.push_back("train");
  c.insert(c.end(), args.begin(), args.end());
  return c;
}

// Runs a job to its end (at most two minutes); fails the test, showing its output, on a
// non-zero exit.
void run_job(int ranks, const std::vector<std::string>& args, const fs::path& log) {
  testing::Child job(command(ranks, args), log);
  REQUIRE(job.started());
  const int code = job.finish(120);
  INFO(job.output());
  REQUIRE(code == 0);
}

std::vector<std::string> tiny_run(const fs::path& data, const fs::path& out,
                                  const std::string& name) {
  return {"--data",    data.string(), "--output",      out.string(),  "--name",    name,
          "--preset",  "nano",        "--model",       "depth=2",     "--model",   "dim=32",
          "--model",   "heads=2",     "--model",       "mlp_dim=64",  "--threads", "1",
          "--workers", "1",           "--no-progress", "--log-every", "1",         "--precision",
          "fp32"};
}

std::vector<double> losses(const fs::path& run) {
  std::vector<double> out;
  for (const auto& r : testing::records(run, "step")) out.push_back(r["loss"].get<double>());
  return out;
}

void check_close(const std::vector<double>& a, const std::vector<double>& b, double rel) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("step " << i + 1);
    CHECK(std::abs(a[i] - b[i]) <= rel * std::abs(b[i]));
  }
}

// The largest difference between two checkpoints' tensors of the same name (model and EMA).
double max_weight_difference(const fs::path& a, const fs::path& b) {
  const app::LoadedModel x = app::load_model_file(a.string());
  const app::LoadedModel y = app::load_model_file(b.string());
  std::map<std::string, std::vector<float>> ys;
  for (const auto& [n, t] : y.weights) ys["model." + n] = t.to_vector();
  for (const auto& [n, t] : y.ema) ys["ema." + n] = t.to_vector();
  double worst = 0;
  std::size_t compared = 0;
  auto compare = [&](const std::string& name, const Tensor& t) {
    const auto v = t.to_vector();
    const auto& w = ys.at(name);
    REQUIRE(v.size() == w.size());
    for (std::size_t i = 0; i < v.size(); ++i)
      worst = std::max(worst, static_cast<double>(std::abs(v[i] - w[i])));
    ++compared;
  };
  for (const auto& [n, t] : x.weights) compare("model." + n, t);
  for (const auto& [n, t] : x.ema) compare("ema." + n, t);
  CHECK(compared == ys.size());
  return worst;
}

}  // namespace

// The parity runs are float32 and without a qkv bias, for two reasons that are not the ranks'
// doing but would blur what is checked. The key's bias has an exactly zero gradient (softmax is
// shift-invariant), and AdamW turns the float noise standing in for it into steps of +-lr whose
// signs follow the summation order, so that bias random-walks differently with every order of
// summation (any two thread counts too). And under bf16 autocast each weight is rounded to bf16
// every step: a 1e-7 difference occasionally moves a weight across a rounding boundary, a jump of
// 2^-8 relative. With both, the runs agree to about 1e-4 after 20 steps; without, to 1e-7.
TEST_CASE("one process and 2 or 3 ranks train the same model", "[dist][mpi][train]") {
  if (!mpi_available()) return;
  testing::TempDir tmp("dist-parity");
  // 83 = 9 * 9 + 2 training images in batches of 9 (10 steps an epoch, the last batch of 2
  // leaving the third of 3 ranks without a sample); 37 test images, 5 evaluation batches.
  testing::write_synthetic_cifar(tmp.path / "data", 83, 37);
  auto args = [&](const std::string& name) {
    auto a = tiny_run(tmp.path / "data", tmp.path / "runs", name);
    for (const char* s : {"--epochs",     "2",
                          "--batch-size", "9",
                          "--augment",    "randaugment",
                          "--mixup",      "0.8",
                          "--cutmix",     "1.0",
                          "--dropout",    "0.1",
                          "--drop-path",  "0.2",
                          "--model",      "attn_dropout=0.1",
                          "--model",      "emb_dropout=0.1",
                          "--model",      "qkv_bias=false",
                          "--model-ema",  "--model-ema-decay",
                          "0.9",          "--tta",
                          "flip"})
      a.push_back(s);
    return a;
  };
  run_job(0, args("one"), tmp.path / "one.log");
  run_job(2, args("two"), tmp.path / "two.log");
  run_job(3, args("three"), tmp.path / "three.log");
  const fs::path one = tmp.path / "runs" / "one";
  const auto reference = losses(one);
  REQUIRE(reference.size() == 20);
  CHECK(reference.front() != reference.back());  // it trains
  for (const char* name : {"two", "three"}) {
    INFO(name << " ranks");
    const fs::path run = tmp.path / "runs" / name;
    check_close(losses(run), reference, 1e-5);
    CHECK(max_weight_difference(run / "checkpoint-last.safetensors",
                                one / "checkpoint-last.safetensors") <= 1e-5);
    // The sharded evaluation: the same accuracies (counts of the same predictions), the same
    // loss up to summation order.
    const auto epochs = testing::records(run, "epoch"), ref = testing::records(one, "epoch");
    REQUIRE(epochs.size() == 2);
    for (std::size_t e = 0; e < 2; ++e) {
      CHECK(epochs[e]["test_accuracy"] == ref[e]["test_accuracy"]);
      CHECK(epochs[e]["test_accuracy_ema"] == ref[e]["test_accuracy_ema"]);
      CHECK(epochs[e]["test_loss"].get<double>() ==
            Approx(ref[e]["test_loss"].get<double>()).epsilon(1e-5));
    }
    // One voice: rank 0 wrote the run folder and printed; no other rank printed a line.
    const std::string log = testing::Child::output_of(tmp.path / (std::string(name) + ".log"));
    CHECK_THAT(log, Contains("data parallel: "));
    CHECK(testing::count(log, "epoch 2/2:") == 1);
  }
}

TEST_CASE("a run stopped on 2 ranks resumes on 1 and the other way with the same losses",
          "[dist][mpi][train]") {
  if (!mpi_available()) return;
  testing::TempDir tmp("dist-resume");
  testing::write_synthetic_cifar(tmp.path / "data", 40, 10);
  auto args = [&](const std::string& name) {
    auto a = tiny_run(tmp.path / "data", tmp.path / "runs", name);
    for (const char* s : {"--epochs", "3", "--batch-size", "8", "--augment", "basic", "--mixup",
                          "0.2", "--dropout", "0.1", "--drop-path", "0.2", "--model",
                          "qkv_bias=false"})  // float32, no qkv bias: see the test above
      a.push_back(s);
    return a;
  };
  auto resume = [&](const std::string& name) {
    return std::vector<std::string>{"--resume", (tmp.path / "runs" / name).string()};
  };
  auto stop_after = [&](std::vector<std::string> a, int steps) {
    a.push_back("--stop-after-steps");
    a.push_back(std::to_string(steps));
    return a;
  };
  run_job(0, args("full"), tmp.path / "full.log");
  const auto reference = losses(tmp.path / "runs" / "full");
  REQUIRE(reference.size() == 15);

  run_job(2, stop_after(args("two-then-one"), 7), tmp.path / "a1.log");  // epoch 2, step 2
  CHECK(losses(tmp.path / "runs" / "two-then-one").size() == 7);         // rank 0 logged every step
  run_job(0, resume("two-then-one"), tmp.path / "a2.log");
  check_close(losses(tmp.path / "runs" / "two-then-one"), reference, 1e-5);

  run_job(0, stop_after(args("one-then-two"), 12), tmp.path / "b1.log");  // epoch 3, step 2
  run_job(2, resume("one-then-two"), tmp.path / "b2.log");
  check_close(losses(tmp.path / "runs" / "one-then-two"), reference, 1e-5);
}

namespace {

// A 2-rank job that trains until stopped, once its first checkpoint exists.
struct EndlessJob {
  fs::path run, marker;  // marker: a path on the ranks' command lines
  std::unique_ptr<testing::Child> job;
  EndlessJob(const testing::TempDir& tmp, const std::string& name,
             std::vector<std::string> extra = {}) {
    testing::write_synthetic_cifar(tmp.path / "data", 32, 8);
    auto a = tiny_run(tmp.path / "data", tmp.path / "runs", name);
    for (const char* s : {"--epochs", "100000", "--batch-size", "8"}) a.push_back(s);
    a.insert(a.end(), extra.begin(), extra.end());
    run = tmp.path / "runs" / name;
    marker = tmp.path;
    job = std::make_unique<testing::Child>(command(2, a), tmp.path / (name + ".log"));
  }
  // Waits for the first checkpoint; the pid of rank `rank`.
  pid_t rank_pid(int rank) {
    REQUIRE(job->started());
    const bool ready = testing::wait_until(
        [&] { return fs::exists(run / "checkpoint-last.safetensors") || !job->running(); }, 60);
    INFO(job->output());
    REQUIRE(ready);
    REQUIRE(job->running());
    const auto pids =
        testing::find_processes("OMPI_COMM_WORLD_RANK=" + std::to_string(rank), marker.string());
    REQUIRE(pids.size() == 1);
    return pids[0];
  }
};

}  // namespace

TEST_CASE("a rank with bad input ends the job within 30 s, naming the rank", "[dist][mpi][train]") {
  if (!mpi_available()) return;
  testing::TempDir tmp("dist-bad");
  const fs::path good = testing::write_synthetic_cifar(tmp.path / "good", 40, 8);
  const fs::path bad = testing::write_synthetic_cifar(tmp.path / "bad", 40, 8);
  fs::resize_file(bad / "data_batch_3.bin", 3073 * 8 - 100);  // a truncated record
  // MPMD: rank 1 alone reads the damaged copy (as a machine with a bad disk would).
  auto a = tiny_run(good.parent_path(), tmp.path / "runs", "bad");
  for (const char* s : {"--epochs", "2", "--batch-size", "8"}) a.push_back(s);
  std::vector<std::string> c = command(1, a);
  c.push_back(":");
  c.insert(c.end(), {"-np", "1", kVit, "train"});
  auto b = a;
  b[1] = bad.parent_path().string();
  c.insert(c.end(), b.begin(), b.end());
  testing::Child job(c, tmp.path / "job.log");
  REQUIRE(job.started());
  const int code = job.finish(60);
  const std::string out = job.output();
  INFO(out);
  CHECK(code == 1);
  CHECK(job.seconds() < 30);
  CHECK_THAT(out, Contains("error: [rank 1 of 2]") && Contains("data_batch_3.bin"));
}

TEST_CASE("a rank that stops answering ends the job after --dist-timeout, named",
          "[dist][mpi][train]") {
  if (!mpi_available()) return;
  testing::TempDir tmp("dist-timeout");
  EndlessJob e(tmp, "hang", {"--dist-timeout", "3"});
  const pid_t rank1 = e.rank_pid(1);
  ::kill(rank1, SIGSTOP);  // alive but silent, as a rank stuck in a deadlock or a dead NFS read
  const int code = e.job->finish(60);
  ::kill(rank1, SIGKILL);
  ::kill(rank1, SIGCONT);
  const std::string out = e.job->output();
  INFO(out);
  CHECK(code == 1);
  CHECK_THAT(out, Contains("[rank 0 of 2]") && Contains("did not complete within 3 s") &&
                      Contains("rank 1 (last seen entering collective #") &&
                      Contains("did not arrive"));
}

TEST_CASE("a rank killed with SIGKILL ends the job and the last checkpoint loads",
          "[dist][mpi][train]") {
  if (!mpi_available()) return;
  testing::TempDir tmp("dist-kill");
  EndlessJob e(tmp, "killed");
  ::kill(e.rank_pid(0), SIGKILL);  // rank 0: the one that writes the checkpoints
  const int code = e.job->finish(30);
  INFO(e.job->output());
  CHECK(code != 0);
  CHECK(code != -9);  // mpirun ended by itself
  const app::LoadedModel ckpt =
      app::load_model_file((e.run / "checkpoint-last.safetensors").string());
  CHECK(ckpt.is_checkpoint);
  CHECK(ckpt.state.global_step > 0);
  // ...and the run resumes from it on one process.
  run_job(0,
          {"--resume", e.run.string(), "--stop-after-steps",
           std::to_string(ckpt.state.global_step + 1), "--no-progress"},
          tmp.path / "resume.log");
}

TEST_CASE("SIGTERM to one rank during an evaluation stops every rank with a checkpoint",
          "[dist][mpi][train][signals]") {
  if (!mpi_available()) return;
  testing::TempDir tmp("dist-sigterm");
  // One step an epoch and 2000 test images: the job spends nearly all its time evaluating.
  testing::write_synthetic_cifar(tmp.path / "data", 8, 2000);
  auto a = tiny_run(tmp.path / "data", tmp.path / "runs", "sigterm");
  // A stop that one rank took alone would leave the other waiting: --dist-timeout ends that
  // with exit code 1 instead of 130.
  for (const char* s : {"--epochs", "100000", "--batch-size", "8", "--dist-timeout", "20"})
    a.push_back(s);
  const fs::path run = tmp.path / "runs" / "sigterm";
  testing::Child job(command(2, a), tmp.path / "job.log");
  REQUIRE(job.started());
  REQUIRE(testing::wait_until(
      [&] { return fs::exists(run / "checkpoint-last.safetensors") || !job.running(); }, 60));
  REQUIRE(job.running());
  const auto rank1 = testing::find_processes("OMPI_COMM_WORLD_RANK=1", tmp.path.string());
  REQUIRE(rank1.size() == 1);
  ::kill(rank1[0], SIGTERM);
  const int code = job.finish(60);
  const std::string out = job.output();
  INFO(out);
  CHECK(code == 130);
  CHECK_THAT(out, Contains("during the evaluation") && Contains("stopped at epoch"));
  const app::LoadedModel ckpt =
      app::load_model_file((run / "checkpoint-last.safetensors").string());
  CHECK(ckpt.state.global_step >= 1);
  CHECK(ckpt.state.batch == 1);  // after the epoch's step, before its evaluation ended
}
