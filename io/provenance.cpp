#include "io/provenance.hpp"

#include <fmt/core.h>

#include "io/hdf5.hpp"

namespace pref::io {

void write_provenance(hid_t file, const Provenance& p, const std::string& what) {
  h5::write_string_attribute(file, "model", p.model, what);
  h5::write_string_attribute(file, "model_checksum", p.model_checksum, what);
  h5::write_string_attribute(file, "data", p.data, what);
  h5::write_string_attribute(file, "data_checksum", p.data_checksum, what);
}

Provenance read_provenance(hid_t file, const std::string& what) {
  Provenance p;
  auto get = [&](const char* name) {
    return h5::has_attribute(file, name) ? h5::read_string_attribute(file, name, what)
                                         : std::string();
  };
  p.model = get("model");
  p.model_checksum = get("model_checksum");
  p.data = get("data");
  p.data_checksum = get("data_checksum");
  return p;
}

void require_compatible(const FactorSource& source, const LabelFile& data,
                        const std::string& data_option, bool users) {
  const bool same_comparisons = data.comparisons() == source.comparisons;
  const bool same_users = !users || data.users() == source.users;
  if (same_comparisons && same_users) return;
  if (users)
    throw InputError(
        fmt::format("{}: {} users and {} comparisons, but the {} {} has {} and {} ({}, {})",
                    data.path(), data.users(), data.comparisons(), source.noun, source.path,
                    source.users, source.comparisons, data_option, source.option));
  throw InputError(fmt::format("{}: {} comparisons, but the {} {} has {} ({}, {})", data.path(),
                               data.comparisons(), source.noun, source.path, source.comparisons,
                               data_option, source.option));
}

void require_same_model(const std::string& derived, const std::string& derived_option,
                        const Provenance& recorded, const std::string& model,
                        const std::string& model_option, const std::string& model_checksum,
                        bool* unchecked) {
  if (unchecked) *unchecked = recorded.model_checksum.empty();
  if (recorded.model_checksum.empty() || recorded.model_checksum == model_checksum) return;
  throw InputError(fmt::format(
      "{}: made from {}, whose model's comparison factors have the checksum {}, not from the "
      "model {} (checksum {}) ({}, {})",
      derived, recorded.model.empty() ? std::string("?") : recorded.model, recorded.model_checksum,
      model, model_checksum, derived_option, model_option));
}

}  // namespace pref::io
