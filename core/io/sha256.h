// File: sha256.h
//
// SHA-256 (OpenSSL's libcrypto): artifact integrity (the daemon hashes every artifact once when
// a job finishes, prunectl checks downloads against it) and the provenance hashes of a job's
// report (model files, tokenizer, calibration data and tokens).
//
//   Sha256 h;
//   h.Update(chunk1);
//   h.Update(chunk2);
//   std::string hex = h.HexDigest();  // 64 lower-case hex characters
//
//   ASSIGN_OR_RETURN(std::string hex, Sha256File("/data/jobs/j-1/report.json"));
//
// Thread-safety: a Sha256 object is not thread-safe; the free functions are.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace prunerd {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(absl::string_view data);
  void Update(const void* data, size_t size);
  // Finishes the hash; the object must not be updated afterwards.
  std::string HexDigest();
  // The 32 raw bytes.
  std::string Digest();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string Sha256Hex(absl::string_view data);
// Hashes a file, reading it in 1 MiB blocks. NotFound / Internal naming the file on error.
absl::StatusOr<std::string> Sha256File(const std::string& path);

}  // namespace prunerd
