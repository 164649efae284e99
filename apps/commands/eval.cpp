#include "apps/commands/eval.h"

#include <filesystem>

#include "apps/commands/command.h"
#include "apps/data/loader.h"
#include "apps/data/locate.h"
#include "apps/train/trainer.h"
#include "apps/weights.h"
#include "core/autograd.h"
#include "core/safetensors.h"
#include "ops/shape.h"

namespace pw::app {

EvalReport run_eval(const EvalOptions& o) {
  set_compute_threads(o.threads);
  const LoadedModel loaded = load_model_file(o.weights);
  auto model = build_model(loaded);
  model->eval();
  const auto where = data::locate_cifar10(data::default_locate_options(
      o.data.empty() ? std::nullopt : std::optional<std::filesystem::path>(o.data)));
  const data::Dataset test =
      data::read_cifar10(where.path, data::Split::Test, o.limit_test > 0 ? o.limit_test : -1);
  data::LoaderConfig lc;
  lc.batch_size = o.batch_size;
  lc.shuffle = false;
  lc.augment.augment = data::AugmentPolicy::None;
  data::Loader loader(test, lc);
  loader.start_epoch(0);

  const auto C = static_cast<std::size_t>(loaded.info.config.num_classes);
  EvalReport r;
  r.confusion.assign(C, std::vector<std::int64_t>(C, 0));
  std::vector<Tensor> all_logits;
  NoGradGuard no_grad;
  std::int64_t correct = 0, seen = 0;
  while (auto batch = loader.next()) {
    Tensor logits = model->forward(batch->images);
    const auto v = logits.to_vector();
    for (std::size_t i = 0; i < batch->labels.size(); ++i) {
      const float* row = v.data() + i * C;
      const auto pred = static_cast<std::size_t>(std::max_element(row, row + C) - row);
      const auto truth = static_cast<std::size_t>(batch->labels[i]);
      PW_CHECK(truth < C, "[eval] label {} outside the model's {} classes", truth, C);
      r.confusion[truth][pred]++;
      correct += pred == truth;
      ++seen;
    }
    if (!o.save_logits.empty()) all_logits.push_back(logits);
  }
  r.accuracy = seen ? static_cast<double>(correct) / static_cast<double>(seen) : 0.0;
  for (std::size_t c = 0; c < C; ++c) {
    std::int64_t total = 0;
    for (auto n : r.confusion[c]) total += n;
    r.per_class_accuracy.push_back(
        total ? static_cast<double>(r.confusion[c][c]) / static_cast<double>(total) : 0.0);
  }
  if (!o.save_logits.empty()) {
    std::vector<float> labels;
    for (std::int64_t i = 0; i < seen; ++i)
      labels.push_back(static_cast<float>(test.labels[static_cast<std::size_t>(i)]));
    save_safetensors(o.save_logits,
                     {{"logits", cat(all_logits, 0)}, {"labels", from_vector(labels, {seen})}},
                     {{"weights", o.weights}, {"images", std::to_string(seen)}});
  }

  const auto& names = loaded.info.classes;
  auto name = [&](std::size_t c) { return c < names.size() ? names[c] : std::to_string(c); };
  fmt::print("test accuracy: {:.2f}% ({} / {} images, {})\n\nper-class accuracy:\n",
             100 * r.accuracy, correct, seen, o.weights);
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
  sub->add_option("--data", o->data, "CIFAR-10 folder or .tar.gz (default: searched)");
  sub->add_option("--limit-test", o->limit_test, "Use only the first N test images (0: all)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("-b,--batch-size", o->batch_size, "Batch size")->check(CLI::PositiveNumber);
  sub->add_option("--threads", o->threads, "Compute threads (0: all cores)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--save-logits", o->save_logits,
                  "Write the logits and labels to this .safetensors file");
  when_chosen(*sub, [o] {
    run_eval(*o);
    return 0;
  });
}

}  // namespace pw::app
