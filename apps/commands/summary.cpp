#include "apps/commands/summary.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <memory>

#include "apps/commands/command.h"
#include "apps/weights.h"
#include "core/autograd.h"
#include "core/error.h"

namespace pw::app {
namespace {

std::string parent_of(const std::string& name) {
  const auto dot = name.rfind('.');
  return dot == std::string::npos ? "" : name.substr(0, dot);
}

bool under(const std::string& name, const std::string& prefix) {
  return name == prefix || name.rfind(prefix + ".", 0) == 0;
}

// Output shapes by rule, for a batch of one (T tokens, N = G*G patches or stem tokens, D wide):
//   the model (1, C); patch_embed (1, N, D); a patch stem's Conv2d (1, D, G, G); a conv stem's
//   conv.i (1, out_i, S_i, S_i), S_i its output side before the pool, and the conv list the
//   map (1, D, G, G) the tokens come from;
//   under attention_pool, head_drop and head: (1, width), elsewhere (1, T, width), where width is
//   - a Linear's output features, D for LayerNorm, Attention, blocks and the block list,
//     and an Mlp's fc2 output features;
//   - for modules that keep their input's shape (Dropout, DropPath, activations, Identity),
//     the width of the sibling registered just before them, which feeds them in every
//     forward here (fc1 -> act -> drop1, proj -> proj_drop, attn -> drop_path1 ...); an
//     Attention's Identity proj sees the concatenated heads, H * Dh.
// pos_drop sees T tokens, after the class token is prepended, which the (1, T, D) rule gives.
std::vector<SummaryRow> rows_by_rule(models::VisionTransformer& model) {
  const auto& c = model.cfg;
  const std::int64_t T = c.num_tokens(), N = c.num_patches(), D = c.dim, G = c.grid_size();
  const nn::ConvTokenizerConfig stem = c.conv_stem();
  const std::vector<std::int64_t> stem_sides = nn::ConvTokenizer::sides(stem, c.image_size);
  const std::int64_t inner = c.heads * (c.head_dim > 0 ? c.head_dim : c.dim / c.heads);
  std::vector<SummaryRow> rows;
  std::map<std::string, std::int64_t> width;      // by module name
  std::map<std::string, std::string> last_child;  // parent -> the most recent child seen
  std::map<std::string, std::string> type_of;
  for (auto& [name, m] : model.named_modules()) {
    SummaryRow r;
    r.name = name;
    r.type = m->type_name();
    r.depth = name.empty() ? 0 : 1 + static_cast<int>(std::count(name.begin(), name.end(), '.'));
    r.params = m->num_parameters();
    const std::string parent = parent_of(name);
    std::int64_t w = D;
    if (auto* lin = dynamic_cast<nn::Linear*>(m)) {
      w = lin->weight.shape()[0];
    } else if (auto* mlp = dynamic_cast<nn::Mlp*>(m)) {
      w = mlp->fc2->weight.shape()[0];
    } else if (dynamic_cast<nn::LayerNorm*>(m) || dynamic_cast<nn::Attention*>(m) ||
               dynamic_cast<nn::TransformerBlock*>(m) || r.type == "ModuleList") {
      w = D;
    } else if (r.type == "Identity" && type_of[parent] == "Attention") {
      w = inner;
    } else if (!name.empty() && last_child.count(parent)) {
      w = width[last_child[parent]];  // shape-preserving: fed by its previous sibling
    }
    if (name.empty())
      r.output = {1, c.num_classes};
    else if (name == "patch_embed")
      r.output = {1, N, D};
    else if (under(name, "patch_embed.conv") && name != "patch_embed.conv") {
      const auto i = static_cast<std::size_t>(std::stoll(name.substr(name.rfind('.') + 1)));
      const std::int64_t out = i + 1 < static_cast<std::size_t>(stem.layers) ? stem.hidden : D;
      r.output = {1, out, stem_sides[i], stem_sides[i]};
    } else if (under(name, "patch_embed"))
      r.output = {1, D, G, G};
    else if (under(name, "head") || under(name, "head_drop") || under(name, "attention_pool"))
      r.output = {1, w};
    else
      r.output = {1, T, w};
    width[name] = w;
    type_of[name] = r.type;
    if (!name.empty()) last_child[parent] = name;
    rows.push_back(std::move(r));
  }
  return rows;
}

// Runs one forward pass on a zero image and checks the rows that it can observe, so that the
// rules above cannot silently drift from the model.
void check_against_forward(models::VisionTransformer& model, const std::vector<SummaryRow>& rows) {
  const auto& c = model.cfg;
  const Tensor x = zeros({1, c.channels, c.image_size, c.image_size});
  model.eval();
  NoGradGuard no_grad;
  model.keep_attention(true);
  const Tensor logits = model.forward(x);
  const auto maps = model.attention_maps();
  model.keep_attention(false);
  const Tensor embedded = model.patch_embed->forward(x);
  for (const auto& r : rows) {
    Shape seen;
    if (r.name.empty()) seen = logits.shape();
    if (r.name == "patch_embed") seen = embedded.shape();
    if (r.type == "TransformerBlock" && !maps.empty())  // (1, H, T, T) -> T tokens of width D
      seen = {1, maps.front().shape()[2], c.dim};
    PW_CHECK(seen.empty() || seen == r.output, "[summary] '{}' outputs {} but the table says {}",
             r.name, shape_str(seen), shape_str(r.output));
  }
}

// 1234567 -> "1,234,567" (counts are never negative).
std::string thousands(std::int64_t n) {
  const std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

std::string shape_list(const Shape& s) {
  return fmt::format("[{}]", fmt::join(s, ", "));
}

}  // namespace

ModelSummary summarize(models::VisionTransformer& model) {
  ModelSummary s;
  s.rows = rows_by_rule(model);
  check_against_forward(model, s.rows);
  s.total_params = model.num_parameters();
  s.forward_flops = model.forward_flops();
  s.input = {1, model.cfg.channels, model.cfg.image_size, model.cfg.image_size};
  return s;
}

std::string format_summary(const ModelSummary& s, int max_depth) {
  std::size_t name_width = 20;
  for (const auto& r : s.rows)
    if (max_depth < 0 || r.depth <= max_depth)
      name_width = std::max(name_width, 2 * static_cast<std::size_t>(r.depth) +
                                            std::max<std::size_t>(r.name.size(), 5));
  const std::string rule(name_width + 2 + 18 + 2 + 16 + 2 + 12, '-');
  std::string out = rule + "\n";
  out += fmt::format("{:<{}}  {:<18}  {:<16}  {:>12}\n", "Module", name_width, "Type",
                     "Output shape", "Params");
  out += std::string(rule.size(), '=') + "\n";
  for (const auto& r : s.rows) {
    if (max_depth >= 0 && r.depth > max_depth) continue;
    const std::string label = std::string(2 * static_cast<std::size_t>(r.depth), ' ') +
                              (r.name.empty() ? "(model)" : r.name);
    out += fmt::format("{:<{}}  {:<18}  {:<16}  {:>12}\n", label, name_width, r.type,
                       shape_list(r.output), thousands(r.params));
  }
  out += std::string(rule.size(), '=') + "\n";
  out += fmt::format("Total params: {}\n", thousands(s.total_params));
  out += fmt::format("Params size (MB, float32): {:.2f}\n",
                     static_cast<double>(s.total_params) * 4 / (1024.0 * 1024.0));
  out += fmt::format("Input shape: {}\n", shape_list(s.input));
  out += fmt::format("Forward GFLOPs per image: {:.4f}\n", s.forward_flops / 1e9);
  out += rule + "\n";
  return out;
}

namespace {

struct SummaryOptions {
  std::string preset = "nano";
  std::vector<std::string> model;  // --model key=value overrides
  std::string weights;
  int depth = -1;
};

// "patch 4", or the conv stem's layers, e.g. "conv stem: 2 x (3x3 conv stride 1, ReLU, 3x3/2
// max-pool), widths 64, 128 (patch_size ignored)".
std::string stem_description(const models::ViTConfig& c) {
  if (c.stem != "conv") return fmt::format("patch {}", c.patch_size);
  std::vector<std::int64_t> widths(static_cast<std::size_t>(c.stem_layers), c.stem_channels);
  widths.back() = c.dim;
  return fmt::format(
      "conv stem: {} x ({}x{} conv stride {}, ReLU{}), widths {} (patch_size ignored)",
      c.stem_layers, c.stem_kernel, c.stem_kernel, c.stem_stride,
      c.stem_pool == "max" ? ", 3x3/2 max-pool" : "", fmt::join(widths, ", "));
}

void run_summary(const SummaryOptions& o) {
  std::unique_ptr<models::VisionTransformer> model;
  std::string source;
  if (!o.weights.empty()) {
    model = build_model(load_model_file(o.weights));
    source = o.weights;
  } else {
    model = std::make_unique<models::VisionTransformer>(
        models::apply_overrides(models::vit_preset(o.preset), o.model));
    source = "preset " + o.preset;
  }
  const auto& c = model->cfg;
  fmt::print(
      "ViT from {}: image {}, {} -> {}x{} tokens, dim {}, depth {}, heads {}, mlp {}, pool {}, "
      "pos_embed {}, {} classes\n",
      source, c.image_size, stem_description(c), c.grid_size(), c.grid_size(), c.dim, c.depth,
      c.heads, c.mlp_dim, c.pool, c.pos_embed, c.num_classes);
  fmt::print("{}", format_summary(summarize(*model), o.depth));
}

}  // namespace

void add_summary_command(CLI::App& app) {
  auto o = std::make_shared<SummaryOptions>();
  CLI::App* sub =
      app.add_subcommand("summary", "Table of the model's modules, output shapes and parameters");
  sub->option_defaults()->always_capture_default();
  auto* preset = sub->add_option("--preset", o->preset, "Model preset")
                     ->check(CLI::IsMember(models::vit_preset_names()));
  auto* model = sub->add_option(
      "--model", o->model, "Override a model config field, key=value (e.g. depth=4); repeatable");
  sub->add_option("--weights", o->weights,
                  "Describe the model of this weights file or checkpoint instead")
      ->excludes(preset)
      ->excludes(model);
  sub->add_option("--depth", o->depth, "Show modules nested at most this deep (-1: all)")
      ->check(CLI::Range(-1, 64));
  when_chosen(*sub, [o] {
    run_summary(*o);
    return 0;
  });
}

}  // namespace pw::app
