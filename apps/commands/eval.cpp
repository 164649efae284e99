#include "apps/commands/eval.h"

#include <filesystem>
#include <thread>

#include "apps/commands/command.h"
#include "apps/evaluate.h"
#include "apps/precision.h"
#include "apps/train/trainer.h"
#include "apps/weights.h"
#include "core/autograd.h"
#include "data/datasets.h"
#include "io/safetensors.h"
#include "ops/shape.h"

namespace pw::app {

EvalReport run_eval(const EvalOptions& o) {
  set_compute_threads(o.threads);
  const Tta tta = parse_tta(o.tta, "--tta");
  const LoadedModel loaded = load_model_file(o.weights);
  auto model = build_model(loaded);
  data::DatasetOptions d;
  d.dataset = o.dataset.empty() ? loaded.info.dataset : o.dataset;
  d.data = o.data;
  d.cifar100_labels = o.cifar100_labels.empty() ? loaded.info.labels : o.cifar100_labels;
  d.limit_test = o.limit_test > 0 ? o.limit_test : -1;
  d.read_train = false;
  d.val_split = o.val_split >= 0 ? o.val_split : loaded.info.val_split;
  d.seed = o.seed >= 0 ? static_cast<std::uint64_t>(o.seed) : loaded.info.seed;
  d.memory_budget_bytes = o.cache_mb << 20;
  d.threads = static_cast<int>(o.threads > 0 ? o.threads : std::thread::hardware_concurrency());
  if (d.dataset == "folder") d.classes = loaded.info.classes;  // val/ folders map to these
  d.compute_normalization = false;                             // the weights' own is used
  const data::Splits splits = data::load_datasets(d);
  const data::Dataset& test = splits.test;
  for (const auto& note : splits.notes) fmt::print("{}\n", note);
  const auto C = static_cast<std::size_t>(loaded.info.config.num_classes);
  PW_CHECK(static_cast<std::size_t>(test.num_classes()) == C,
           "[eval] {} has {} classes, but the {} data has {}", o.weights, C, d.dataset,
           test.num_classes());
  const PrecisionChoice precision = resolve_precision(o.precision);
  const SplitPredictions pred = predict_split(*model, loaded.info, test, o.batch_size,
                                              static_cast<int>(o.workers), precision.bf16(), tta);

  EvalReport r;
  r.confusion.assign(C, std::vector<std::int64_t>(C, 0));
  for (std::size_t i = 0; i < pred.labels.size(); ++i) {
    const auto truth = static_cast<std::size_t>(pred.labels[i]);
    PW_CHECK(truth < C, "[eval] label {} outside the model's {} classes", truth, C);
    r.confusion[truth][static_cast<std::size_t>(pred.predicted[i])]++;
  }
  r.accuracy = pred.accuracy();
  for (std::size_t c = 0; c < C; ++c) {
    std::int64_t total = 0;
    for (auto n : r.confusion[c]) total += n;
    r.per_class_accuracy.push_back(
        total ? static_cast<double>(r.confusion[c][c]) / static_cast<double>(total) : 0.0);
  }
  const auto seen = static_cast<std::int64_t>(pred.labels.size());
  std::int64_t correct = 0;
  for (std::size_t c = 0; c < C; ++c) correct += r.confusion[c][c];
  if (!o.save_logits.empty()) {
    save_safetensors(o.save_logits,
                     {{"logits", pred.logits}, {"labels", labels_tensor(pred.labels)}},
                     {{"weights", o.weights}, {"images", std::to_string(seen)}});
  }

  const auto& names = loaded.info.classes;
  auto name = [&](std::size_t c) { return c < names.size() ? names[c] : std::to_string(c); };
  fmt::print("test accuracy: {:.2f}% ({} / {} images, {}{})\n{}\n\nper-class accuracy:\n",
             100 * r.accuracy, correct, seen, o.weights,
             tta == Tta::Flip ? ", test-time augmentation: flip" : "", describe(precision));
  for (std::size_t c = 0; c < C; ++c)
    fmt::print("  {:>12} {:6.2f}%\n", name(c), 100 * r.per_class_accuracy[c]);
  fmt::print("\nconfusion matrix (rows: true class, columns: predicted):\n{:>12}", "");
  for (std::size_t c = 0; c < C; ++c) fmt::print(" {:>5.5}", name(c));
  fmt::print("\n");
  for (std::size_t t = 0; t < C; ++t) {
    fmt::print("{:>12}", name(t));
    for (std::size_t p = 0; p < C; ++p) fmt::print(" {:>5}", r.confusion[t][p]);
    fmt::print("\n");
  }
  if (!o.save_logits.empty()) fmt::print("\nlogits written to {}\n", o.save_logits);
  return r;
}

void add_eval_command(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App* sub =
      app.add_subcommand("eval", "Test accuracy, per-class accuracy and confusion matrix");
  sub->option_defaults()->always_capture_default();
  sub->add_option("--weights", o->weights, "model.safetensors or a checkpoint")
      ->required()
      ->check(CLI::ExistingFile);
  sub->add_option("--dataset", o->dataset,
                  "Data set: cifar10, cifar100 or folder (default: the one the weights were "
                  "trained on)")
      ->check(CLI::IsMember(data::dataset_names()));
  sub->add_option("--data", o->data,
                  "CIFAR folder or .tar.gz (default: searched), or the image folder ROOT");
  sub->add_option("--cifar100-labels", o->cifar100_labels,
                  "CIFAR-100 labels, fine or coarse (default: the weights')")
      ->check(CLI::IsMember({"fine", "coarse"}));
  sub->add_option("--val-split", o->val_split,
                  "Image folders without val/: the held-out fraction of train/ (default: the "
                  "one the weights were trained with)");
  sub->add_option("--seed", o->seed,
                  "The seed that drew --val-split (default: the weights' training seed)");
  sub->add_option("--cache-mb", o->cache_mb,
                  "Image folders: decoded images kept in memory up to this many MiB")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 24));
  sub->add_option("--workers", o->workers, "Data-loading threads")->check(CLI::Range(1, 16));
  sub->add_option("--limit-test", o->limit_test, "Use only the first N test images (0: all)")
      ->check(CLI::Range(0, 1'000'000'000));
  sub->add_option("-b,--batch-size", o->batch_size, "Batch size")->check(CLI::Range(1, 65536));
  sub->add_option("--threads", o->threads, "Compute threads (0: all cores)")
      ->check(CLI::Range(0, 1024));
  add_precision_flag(*sub, o->precision);
  sub->add_option("--tta", o->tta,
                  "Test-time augmentation: flip averages the logits of each image and its mirror")
      ->check(CLI::IsMember({"none", "flip"}));
  sub->add_option("--save-logits", o->save_logits,
                  "Write the logits and labels to this .safetensors file");
  when_chosen(*sub, [o] {
    run_eval(*o);
    return 0;
  });
}

}  // namespace pw::app
