#include "core/api/proto_json.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace prunerd {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using json = nlohmann::ordered_json;

constexpr int64_t kMaxExact = int64_t{1} << 53;

bool Is64Bit(const FieldDescriptor* f) {
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT64:
      return true;
    default:
      return false;
  }
}

// "123" -> 123 when it fits a double exactly; anything else is left as it is.
void NumberFromString(json& v, bool is_unsigned) {
  if (!v.is_string()) return;
  const std::string& s = v.get_ref<const std::string&>();
  if (is_unsigned) {
    uint64_t u;
    if (absl::SimpleAtoi(s, &u) && u <= static_cast<uint64_t>(kMaxExact)) v = u;
  } else {
    int64_t i;
    if (absl::SimpleAtoi(s, &i) && i <= kMaxExact && i >= -kMaxExact) v = i;
  }
}

bool IsWellKnown(const Descriptor* d) { return d->file()->package() == "google.protobuf"; }

void FixValue(json& v, const FieldDescriptor* f);

void FixMessage(json& j, const Descriptor* d) {
  if (!j.is_object() || IsWellKnown(d)) return;
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    auto it = j.find(f->name());
    if (it == j.end()) continue;
    if (f->is_map()) {
      // Map entries in key order: protobuf serialises maps in hash order, and one message must
      // print one way.
      const FieldDescriptor* value = f->message_type()->map_value();
      if (it->is_object()) {
        std::vector<std::string> keys;
        for (auto& [key, entry] : it->items()) keys.push_back(key);
        std::sort(keys.begin(), keys.end());
        json sorted = json::object();
        for (const std::string& k : keys) {
          sorted[k] = std::move((*it)[k]);
          FixValue(sorted[k], value);
        }
        *it = std::move(sorted);
      }
    } else if (f->is_repeated()) {
      if (it->is_array()) {
        for (json& e : *it) FixValue(e, f);
      }
    } else {
      FixValue(*it, f);
    }
  }
}

void FixValue(json& v, const FieldDescriptor* f) {
  if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
    FixMessage(v, f->message_type());
  } else if (Is64Bit(f)) {
    NumberFromString(v, f->cpp_type() == FieldDescriptor::CPPTYPE_UINT64);
  }
}

}  // namespace

std::string ProtoToJson(const google::protobuf::Message& message, const JsonOptions& options) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  opts.always_print_primitive_fields = options.with_defaults;
  std::string canonical;
  if (!google::protobuf::util::MessageToJsonString(message, &canonical, opts).ok()) {
    return "{}";
  }
  json j = json::parse(canonical, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return canonical;
  FixMessage(j, message.GetDescriptor());
  return j.dump(options.pretty ? 2 : -1);
}

absl::Status JsonToProto(absl::string_view text, google::protobuf::Message* message) {
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = false;
  const google::protobuf::util::Status s = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(text.data(), text.size()), message, opts);
  if (!s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("not a valid ",
                                                   message->GetDescriptor()->full_name(),
                                                   " in JSON: ", std::string(s.message())));
  }
  return absl::OkStatus();
}

}  // namespace prunerd
