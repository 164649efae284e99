#include "apps/evaluate.h"

#include <algorithm>

#include "core/autocast.h"
#include "core/autograd.h"
#include "core/interrupt.h"
#include "core/parallel.h"
#include "data/loader.h"
#include "ops/elementwise.h"
#include "ops/join.h"
#include "ops/loss.h"
#include "ops/shape.h"

namespace pw::app {

double SplitPredictions::accuracy() const {
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) correct += predicted[i] == labels[i];
  return labels.empty() ? 0.0 : static_cast<double>(correct) / static_cast<double>(labels.size());
}

std::vector<std::int64_t> argmax_rows(const Tensor& logits) {
  const auto v = logits.to_vector();
  const std::int64_t B = logits.shape()[0], C = logits.shape()[1];
  std::vector<std::int64_t> out(static_cast<std::size_t>(B));
  for (std::int64_t i = 0; i < B; ++i) {
    const float* row = v.data() + i * C;
    out[static_cast<std::size_t>(i)] = std::max_element(row, row + C) - row;
  }
  return out;
}

Tensor labels_tensor(const std::vector<std::int64_t>& labels) {
  std::vector<float> v(labels.begin(), labels.end());
  return from_vector(v, {static_cast<std::int64_t>(v.size())});
}

Tta parse_tta(const std::string& name, const std::string& flag) {
  if (name == "none") return Tta::None;
  if (name == "flip") return Tta::Flip;
  fail("[{}] expected none or flip, got '{}'", flag, name);
}

Tensor hflip_images(const Tensor& images) {
  PW_CHECK(images.dim() == 4 && images.dtype() == DType::Float32,
           "[hflip_images] expected (B, C, H, W) float32 images, got {} {}",
           shape_str(images.shape()), dtype_name(images.dtype()));
  const Tensor in = images.is_contiguous() ? images : copy_contiguous(images);
  Tensor out = empty(in.shape());
  const std::int64_t W = in.shape()[3], rows = in.numel() / std::max<std::int64_t>(W, 1);
  const float* src = in.data<float>();
  float* dst = out.data<float>();
  parallel_for(rows, std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(W, 1)),
               [&](std::int64_t begin, std::int64_t end) {
                 for (std::int64_t r = begin; r < end; ++r)
                   std::reverse_copy(src + r * W, src + (r + 1) * W, dst + r * W);
               });
  return out;
}

Tensor predict_logits(models::VisionTransformer& model, const Tensor& images, Tta tta) {
  Tensor logits = model.forward(images);
  if (tta == Tta::None) return logits;
  return mul(add(logits, model.forward(hflip_images(images))), 0.5);
}

SplitPredictions predict_split(models::VisionTransformer& model, const ModelInfo& info,
                               const data::Dataset& split, std::int64_t batch_size, int workers,
                               bool bf16, Tta tta) {
  data::LoaderConfig lc;
  lc.batch_size = batch_size;
  lc.shuffle = false;
  lc.num_workers = workers;
  lc.augment.augment = data::AugmentPolicy::None;
  lc.augment.image_size = static_cast<int>(model.cfg.image_size);
  lc.augment.crop_pct = info.crop_pct;
  lc.normalization = info.normalization;
  data::Loader loader(split, lc);
  loader.start_epoch(0);

  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  AutocastGuard autocast(bf16);
  SplitPredictions r;
  std::vector<Tensor> logits;
  double loss_sum = 0;
  while (auto batch = loader.next()) {
    check_interrupt("evaluate");  // a signal stops an evaluation within a batch
    Tensor l = predict_logits(model, batch->images, tta);
    const auto n = static_cast<double>(batch->labels.size());
    loss_sum += cross_entropy(l, labels_tensor(batch->labels)).item() * n;
    for (auto p : argmax_rows(l)) r.predicted.push_back(p);
    r.labels.insert(r.labels.end(), batch->labels.begin(), batch->labels.end());
    logits.push_back(l);
  }
  model.train(was_training);
  if (!logits.empty()) r.logits = cat(logits, 0);
  r.loss = r.labels.empty() ? 0.0 : loss_sum / static_cast<double>(r.labels.size());
  return r;
}

}  // namespace pw::app
