#include "data/dataset.h"

#include "core/error.h"
#include "data/decode.h"

namespace pw::data {

Image Dataset::image_at(std::int64_t i) const {
  PW_CHECK(i >= 0 && i < size(), "[dataset] image {} is outside a set of {} images", i, size());
  const auto k = static_cast<std::size_t>(i);
  if (!in_memory()) return load_image(files[k]);
  if (sizes.empty()) return Image::from_chw(image(i), 3, height, width);
  return Image::from_chw(images.data() + offsets[k], 3, sizes[k].height, sizes[k].width);
}

void Dataset::check(const std::string& what) const {
  const auto n = static_cast<std::size_t>(size());
  if (!class_names.empty())
    for (std::size_t i = 0; i < n; ++i)
      PW_CHECK(labels[i] >= 0 && labels[i] < num_classes(),
               "[{}] image {} has label {}, outside the {} classes", what, i, labels[i],
               num_classes());
  PW_CHECK(files.empty() || files.size() == n, "[{}] {} labels but {} files", what, n,
           files.size());
  if (sizes.empty()) {
    PW_CHECK(!in_memory() || images.size() == n * static_cast<std::size_t>(image_bytes()),
             "[{}] dataset holds {} labels but {} image bytes", what, n, images.size());
    return;
  }
  PW_CHECK(sizes.size() == n && offsets.size() == n, "[{}] {} labels but {} sizes and {} offsets",
           what, n, sizes.size(), offsets.size());
  if (images.empty()) return;
  for (std::size_t i = 0; i < n; ++i)
    PW_CHECK(offsets[i] >= 0 && offsets[i] + 3LL * sizes[i].height * sizes[i].width <=
                                    static_cast<std::int64_t>(images.size()),
             "[{}] image {} lies outside the {} bytes of pixels", what, i, images.size());
}

Dataset Dataset::slice(std::int64_t begin, std::int64_t end) const {
  PW_CHECK(0 <= begin && begin <= end && end <= size(),
           "[dataset] cannot take images [{}, {}) of a set of {}", begin, end, size());
  Dataset out;
  out.class_names = class_names;
  out.height = height;
  out.width = width;
  out.normalization = normalization;
  out.labels.assign(labels.begin() + begin, labels.begin() + end);
  if (!files.empty()) out.files.assign(files.begin() + begin, files.begin() + end);
  if (sizes.empty()) {
    if (!images.empty())
      out.images.assign(images.begin() + begin * image_bytes(),
                        images.begin() + end * image_bytes());
    return out;
  }
  out.sizes.assign(sizes.begin() + begin, sizes.begin() + end);
  for (std::int64_t i = begin; i < end; ++i) {
    const auto k = static_cast<std::size_t>(i);
    const std::int64_t bytes = 3LL * sizes[k].height * sizes[k].width;
    out.offsets.push_back(static_cast<std::int64_t>(out.images.size()));
    if (!images.empty())
      out.images.insert(out.images.end(), images.begin() + offsets[k],
                        images.begin() + offsets[k] + bytes);
  }
  return out;
}

}  // namespace pw::data
