#include "data/datasets.h"

#include <algorithm>

#include "core/error.h"
#include "data/locate.h"

namespace pw::data {

const std::vector<std::string>& dataset_names() {
  static const std::vector<std::string> names{"cifar10", "cifar100", "folder"};
  return names;
}

CifarLabels parse_cifar100_labels(const std::string& name, const std::string& flag) {
  if (name == "fine") return CifarLabels::Fine;
  if (name == "coarse") return CifarLabels::Coarse;
  fail("[{}] expected fine or coarse, got '{}'", flag, name);
}

Splits load_datasets(const DatasetOptions& o) {
  const auto& names = dataset_names();
  PW_CHECK(std::find(names.begin(), names.end(), o.dataset) != names.end(),
           "[--dataset] expected one of {}, got '{}'", fmt::join(names, ", "), o.dataset);
  if (o.dataset == "folder") {
    PW_CHECK(!o.data.empty(),
             "[--data] --dataset folder needs the folder: --data ROOT, with ROOT/train/<class>/ "
             "and ROOT/val/<class>/");
    return read_image_folder(o.data, o);
  }
  const CifarLayout& layout =
      o.dataset == "cifar10"
          ? cifar10_layout()
          : cifar100_layout(parse_cifar100_labels(o.cifar100_labels, "--cifar100-labels"));
  const auto where = locate_cifar(
      default_locate_options(
          o.data.empty() ? std::nullopt : std::optional<std::filesystem::path>(o.data), layout),
      layout);
  Splits s;
  if (o.read_train) {
    s = read_cifar(where.path, layout, o.limit_train, o.limit_test);
  } else {
    s.test = read_cifar(where.path, layout, Split::Test, o.limit_test);
  }
  s.notes.insert(s.notes.begin(),
                 fmt::format("data: {} {} ({}), {} train / {} test images", layout.title,
                             where.path.string(), where.how, s.train.size(), s.test.size()));
  return s;
}

}  // namespace pw::data
