#include "core/io/file_digests.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "core/io/errno_status.h"
#include "core/io/sha256.h"

namespace prunerd {

FileDigests::FileDigests(std::vector<std::string> paths) : paths_(std::move(paths)) {
  thread_ = std::thread([this] { Run(); });
}

FileDigests::~FileDigests() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void FileDigests::Run() {
  std::string buf(1 << 20, '\0');
  for (const std::string& path : paths_) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      status_ = ErrnoToStatus(errno, "open", path);
      return;
    }
    absl::Cleanup closer = [fd] { ::close(fd); };
    Sha256 h;
    int64_t size = 0;
    for (;;) {
      if (stop_) {
        status_ = absl::CancelledError("hashing stopped");
        return;
      }
      const ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status_ = ErrnoToStatus(errno, "read", path);
        return;
      }
      if (n == 0) break;
      h.Update(buf.data(), static_cast<size_t>(n));
      size += n;
    }
    result_.push_back(FileDigest{.path = path, .size_bytes = size, .sha256 = h.HexDigest()});
  }
}

absl::StatusOr<std::vector<FileDigest>> FileDigests::Wait() {
  if (!joined_) {
    thread_.join();
    joined_ = true;
  }
  if (!status_.ok()) return status_;
  return result_;
}

std::string CombinedDigest(const std::vector<FileDigest>& files) {
  Sha256 h;
  for (const FileDigest& f : files) {
    const size_t slash = f.path.rfind('/');
    const std::string name = slash == std::string::npos ? f.path : f.path.substr(slash + 1);
    h.Update(absl::StrCat(name, " ", f.size_bytes, " ", f.sha256, "\n"));
  }
  return h.HexDigest();
}

}  // namespace prunerd
