// safetensors files are built here byte by byte (8-byte length, JSON header, data), so the
// reader is checked against the format itself, and the writer's output is parsed by hand.
#include "core/io/safetensors.h"

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/io/mmap_file.h"
#include "core/io/test_files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace prunerd {
namespace {

using ::prunerd::testing::ReadBytes;
using ::prunerd::testing::TempDir;
using ::prunerd::testing::U64LE;
using ::prunerd::testing::WriteBytes;
using ::testing::AllOf;
using ::testing::HasSubstr;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

// 8-byte little-endian length, then the header text, then the data.
std::string SafetensorsBytes(const std::string& header, const std::string& data) {
  return U64LE(header.size()) + header + data;
}

class SafetensorsReadTest : public ::testing::Test {
 protected:
  // Writes `bytes` to a file and opens it.
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> OpenBytes(const std::string& bytes) {
    path_ = tmp_.Join("t.safetensors");
    WriteBytes(path_, bytes);
    return SafetensorsFile::Open(path_);
  }
  absl::Status OpenHeader(const std::string& header, const std::string& data) {
    return OpenBytes(SafetensorsBytes(header, data)).status();
  }
  TempDir tmp_;
  std::string path_;
};

TEST(DTypeTest, NamesSizesAndParsing) {
  EXPECT_EQ(DTypeSize(DType::kF32), 4u);
  EXPECT_EQ(DTypeSize(DType::kBF16), 2u);
  EXPECT_EQ(DTypeSize(DType::kI64), 8u);
  EXPECT_EQ(DTypeSize(DType::kBool), 1u);
  for (DType d : {DType::kF64, DType::kF32, DType::kF16, DType::kBF16, DType::kI64, DType::kI32,
                  DType::kI16, DType::kI8, DType::kU8, DType::kBool}) {
    EXPECT_EQ(*DTypeFromName(DTypeName(d)), d);
    EXPECT_EQ(*DTypeFromTorchName(DTypeTorchName(d)), d);
  }
  EXPECT_EQ(DTypeName(DType::kBF16), "BF16");
  EXPECT_EQ(DTypeTorchName(DType::kF16), "float16");
  EXPECT_EQ(*DTypeFromTorchName("torch.bfloat16"), DType::kBF16);
  EXPECT_EQ(*DTypeFromTorchName("fp16"), DType::kF16);
  EXPECT_EQ(*DTypeFromTorchName("half"), DType::kF16);
  EXPECT_TRUE(IsFloating(DType::kBF16));
  EXPECT_FALSE(IsFloating(DType::kI32));
  auto bad = DTypeFromName("F8_E4M3");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(bad.status()), HasSubstr("F8_E4M3"));
  EXPECT_FALSE(DTypeFromTorchName("float8").ok());
  EXPECT_EQ(ShapeString({64, 512}), "[64, 512]");
  EXPECT_EQ(ShapeString({}), "[]");
  EXPECT_EQ(NumElements({3, 4, 5}), 60);
  EXPECT_EQ(NumElements({}), 1);
  HostTensor z = HostTensor::Zeros(DType::kF16, {3, 5});
  EXPECT_EQ(z.bytes->size(), 30u);
  EXPECT_EQ(z.view().nbytes, 30u);
}

TEST_F(SafetensorsReadTest, ReadsHandBuiltFileWithPaddedHeader) {
  // "a" is stored after "b" in the data section; the header has trailing spaces.
  std::string header = R"({"__metadata__":{"format":"pt","note":"x"},)"
                       R"("a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},)"
                       R"("b":{"dtype":"I8","shape":[2,4],"data_offsets":[0,8]},)"
                       R"("e":{"dtype":"F16","shape":[0,3],"data_offsets":[16,16]}})";
  header.append(5, ' ');
  std::string data = "\x01\x02\x03\x04\x05\x06\x07\x08";
  float a[2] = {1.5f, -2.25f};
  data.append(reinterpret_cast<const char*>(a), sizeof(a));
  auto file = OpenBytes(SafetensorsBytes(header, data));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->names(), (std::vector<std::string>{"b", "a", "e"}));
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  EXPECT_EQ((*file)->metadata().at("note"), "x");
  auto va = (*file)->Get("a");
  ASSERT_TRUE(va.ok());
  EXPECT_EQ(va->dtype, DType::kF32);
  EXPECT_EQ(va->shape, (std::vector<int64_t>{2}));
  ASSERT_EQ(va->nbytes, 8u);
  float got[2];
  std::memcpy(got, va->data, 8);
  EXPECT_EQ(got[0], 1.5f);
  EXPECT_EQ(got[1], -2.25f);
  auto vb = (*file)->Get("b");
  ASSERT_TRUE(vb.ok());
  EXPECT_EQ(vb->shape, (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(static_cast<const uint8_t*>(vb->data)[7], 8);
  auto ve = (*file)->Get("e");
  ASSERT_TRUE(ve.ok());
  EXPECT_EQ(ve->nbytes, 0u);
  EXPECT_EQ(ve->numel(), 0);
  EXPECT_TRUE((*file)->Contains("a"));
  EXPECT_FALSE((*file)->Contains("c"));
  auto missing = (*file)->Get("c");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(missing.status()), AllOf(HasSubstr("\"c\""), HasSubstr(path_)));
}

TEST_F(SafetensorsReadTest, FileShorterThanLengthField) {
  auto s = OpenBytes("\x10\x00\x00").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(s), AllOf(HasSubstr(path_), HasSubstr("too short")));
}

TEST_F(SafetensorsReadTest, TruncatedHeader) {
  // The length field says 100 bytes of header, but only 10 follow.
  auto s = OpenBytes(U64LE(100) + std::string("{\"a\": {}  ")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(s), AllOf(HasSubstr("header length says 100 bytes"),
                                HasSubstr("only 10 bytes"), HasSubstr("truncated")));
}

TEST_F(SafetensorsReadTest, HeaderLengthAboveSanityLimit) {
  auto s = OpenBytes(U64LE(uint64_t{1} << 40) + "{}").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("exceeds the limit"));
}

TEST_F(SafetensorsReadTest, HeaderNotJson) {
  auto s = OpenHeader(R"({"a": {"dtype": "F32", )", "");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("header is not valid JSON"));
}

TEST_F(SafetensorsReadTest, HeaderNotAnObject) {
  auto s = OpenHeader("[1, 2, 3]", "");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("header is not a JSON object (found array)"));
}

TEST_F(SafetensorsReadTest, EntryMissingFields) {
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    nlohmann::json entry = {{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {0, 4}}};
    entry.erase(field);
    nlohmann::json header = {{"w", entry}};
    auto s = OpenHeader(header.dump(), "abcd");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_THAT(Message(s), AllOf(HasSubstr("tensor \"w\""),
                                  HasSubstr(std::string("missing field \"") + field + "\"")));
  }
  auto s = OpenHeader(R"({"w": 3})", "");
  EXPECT_THAT(Message(s), HasSubstr("tensor \"w\": header entry is not a JSON object"));
}

TEST_F(SafetensorsReadTest, UnknownDtype) {
  auto s = OpenHeader(R"({"w":{"dtype":"F7","shape":[1],"data_offsets":[0,4]}})", "abcd");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), AllOf(HasSubstr("tensor \"w\""), HasSubstr("unknown dtype \"F7\"")));
}

TEST_F(SafetensorsReadTest, BadShapeAndOffsetValues) {
  auto s = OpenHeader(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "abcd");
  EXPECT_THAT(Message(s), HasSubstr("not a list of non-negative integers"));
  s = OpenHeader(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", "abcd");
  EXPECT_THAT(Message(s), HasSubstr("is not a pair of non-negative integers"));
  s = OpenHeader(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", "abcd");
  EXPECT_THAT(Message(s), HasSubstr("begin > end"));
  s = OpenHeader(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})",
                 "abcd");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("too many"));
}

TEST_F(SafetensorsReadTest, ByteCountDisagreesWithShape) {
  auto s = OpenHeader(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", "12345678");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), AllOf(HasSubstr("tensor \"w\""), HasSubstr("needs 12 bytes"),
                                HasSubstr("span 8 bytes")));
}

TEST_F(SafetensorsReadTest, DataSectionShorterThanOffsets) {
  // A well-formed header whose data was cut off: 16 bytes promised, 8 present.
  auto s = OpenHeader(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", "12345678");
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(s), AllOf(HasSubstr("tensor \"w\""), HasSubstr("outside the file"),
                                HasSubstr("only 8 bytes")));
}

TEST_F(SafetensorsReadTest, OffsetsPointFarOutsideTheFile) {
  auto s = OpenHeader(
      R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[1000000000000,1000000000008]}})",
      "12345678");
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(s),
              AllOf(HasSubstr("[1000000000000, 1000000000008]"), HasSubstr("outside the file")));
}

TEST_F(SafetensorsReadTest, OverlappingTensors) {
  auto s = OpenHeader(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                      "123456789012");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s),
              AllOf(HasSubstr("\"a\" [0, 8)"), HasSubstr("\"b\" [4, 12)"), HasSubstr("overlap")));
}

TEST_F(SafetensorsReadTest, MetadataMustBeStringMap) {
  auto s = OpenHeader(R"({"__metadata__":{"n":3}})", "");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("\"__metadata__\" value for \"n\" is not a string"));
  s = OpenHeader(R"({"__metadata__":[]})", "");
  EXPECT_THAT(Message(s), HasSubstr("\"__metadata__\" is not a JSON object"));
}

TEST_F(SafetensorsReadTest, MissingFileAndDirectory) {
  auto s = SafetensorsFile::Open(tmp_.Join("nope.safetensors")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(s), HasSubstr("nope.safetensors"));
  s = SafetensorsFile::Open(tmp_.path()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("is a directory"));
}

// Views of test tensors over caller-owned buffers.
struct Fixture {
  std::vector<float> f32 = {1.0f, -2.0f, 3.5f, 0.0f, 1e-8f, 7.0f};
  std::vector<uint16_t> f16 = {0x3c00, 0xc000, 0x7bff};
  std::vector<uint16_t> bf16 = {0x3f80, 0x4049, 0xff80, 0x0001};
  std::vector<int64_t> i64 = {-1, int64_t{1} << 40};
  std::vector<NamedTensor> tensors() const {
    return {
        {"w.f32", TensorView{DType::kF32, {2, 3}, f32.data(), f32.size() * 4}},
        {"w.f16", TensorView{DType::kF16, {3}, f16.data(), f16.size() * 2}},
        {"empty", TensorView{DType::kF32, {0, 4}, nullptr, 0}},
        {"w.bf16", TensorView{DType::kBF16, {2, 2}, bf16.data(), bf16.size() * 2}},
        {"ids", TensorView{DType::kI64, {2}, i64.data(), i64.size() * 8}},
    };
  }
};

TEST(SafetensorsWriterTest, RoundTripIsByteIdenticalAndFollowsTheFormat) {
  TempDir tmp;
  Fixture fx;
  const std::string path = tmp.Join("out.safetensors");
  ASSERT_TRUE(SafetensorsWriter::Write(path, fx.tensors(), {{"format", "pt"}}).ok());

  // Parse the file by hand.
  const std::string raw = ReadBytes(path);
  ASSERT_GE(raw.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(raw[i]);
  EXPECT_EQ((8 + n) % 8, 0u) << "data section should start 8-byte aligned";
  auto header = nlohmann::json::parse(raw.substr(8, n));
  EXPECT_EQ(header["__metadata__"]["format"], "pt");
  uint64_t expected_offset = 0;
  for (const NamedTensor& t : fx.tensors()) {
    const auto& e = header[t.name];
    EXPECT_EQ(e["dtype"], std::string(DTypeName(t.view.dtype)));
    EXPECT_EQ(e["shape"].get<std::vector<int64_t>>(), t.view.shape);
    const uint64_t begin = e["data_offsets"][0], end = e["data_offsets"][1];
    EXPECT_EQ(begin, expected_offset) << t.name;  // contiguous, in the given order
    EXPECT_EQ(end - begin, t.view.nbytes);
    if (t.view.nbytes > 0) {
      EXPECT_EQ(std::memcmp(raw.data() + 8 + n + begin, t.view.data, t.view.nbytes), 0);
    }
    expected_offset = end;
  }
  EXPECT_EQ(raw.size(), 8 + n + expected_offset);

  // And read it back with the reader.
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  for (const NamedTensor& t : fx.tensors()) {
    auto v = (*file)->Get(t.name);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->dtype, t.view.dtype);
    EXPECT_EQ(v->shape, t.view.shape);
    ASSERT_EQ(v->nbytes, t.view.nbytes);
    if (v->nbytes > 0) {
      EXPECT_EQ(std::memcmp(v->data, t.view.data, v->nbytes), 0) << t.name;
    }
  }
}

TEST(SafetensorsWriterTest, RejectsBadInputAndLeavesNoFile) {
  TempDir tmp;
  Fixture fx;
  const std::string path = tmp.Join("bad.safetensors");
  auto tensors = fx.tensors();
  tensors[1].view.nbytes = 4;  // F16 [3] needs 6
  auto s = SafetensorsWriter::Write(path, tensors);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), AllOf(HasSubstr("w.f16"), HasSubstr("needs 6 bytes")));
  tensors = fx.tensors();
  tensors.push_back(tensors[0]);
  s = SafetensorsWriter::Write(path, tensors);
  EXPECT_THAT(Message(s), HasSubstr("duplicate tensor name \"w.f32\""));
  s = SafetensorsWriter::Write(path, {{"__metadata__", tensors[0].view}});
  EXPECT_THAT(Message(s), HasSubstr("invalid tensor name"));
  EXPECT_TRUE(std::filesystem::is_empty(tmp.path()));
}

TEST(SafetensorsWriterTest, ReplacesAtomicallyWithoutTempLeftovers) {
  TempDir tmp;
  Fixture fx;
  const std::string path = tmp.Join("m.safetensors");
  WriteBytes(path, "old contents");
  ASSERT_TRUE(SafetensorsWriter::Write(path, fx.tensors()).ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->names().size(), 5u);
  EXPECT_TRUE((*file)->metadata().empty());
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(tmp.path())) {
    EXPECT_EQ(e.path().filename(), "m.safetensors");
    ++entries;
  }
  EXPECT_EQ(entries, 1);
  auto s = SafetensorsWriter::Write(tmp.Join("no/such/dir/x.safetensors"), fx.tensors());
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(s), HasSubstr("no/such/dir/x.safetensors"));
}

TEST(MappedFileTest, MapsReadsAndReportsErrors) {
  TempDir tmp;
  WriteBytes(tmp.Join("f"), "hello");
  WriteBytes(tmp.Join("empty"), "");
  auto f = MappedFile::Open(tmp.Join("f"));
  ASSERT_TRUE(f.ok());
  ASSERT_EQ((*f)->size(), 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>((*f)->data()), 5), "hello");
  auto e = MappedFile::Open(tmp.Join("empty"));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ((*e)->size(), 0u);
  EXPECT_EQ((*e)->data(), nullptr);
  EXPECT_EQ(*ReadFileToString(tmp.Join("f")), "hello");
  auto missing = ReadFileToString(tmp.Join("missing"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(missing.status()), HasSubstr(tmp.Join("missing")));
  EXPECT_EQ(ReadFileToString(tmp.path()).status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(WriteFileAtomic(tmp.Join("f"), "replaced").ok());
  EXPECT_EQ(ReadBytes(tmp.Join("f")), "replaced");
  EXPECT_EQ(WriteFileAtomic(tmp.Join("d/x"), "x").code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace prunerd
