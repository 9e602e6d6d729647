#include "core/io/mmap_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "core/common/status_macros.h"
#include "core/io/atomic_file.h"
#include "core/io/errno_status.h"

namespace prunerd {
namespace {

// Opens `path` read-only and checks it is a regular file.
absl::StatusOr<int> OpenRegularFile(const std::string& path, struct stat* st) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "open", path);
  if (::fstat(fd, st) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoToStatus(err, "stat", path);
  }
  if (S_ISDIR(st->st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError("open " + path + ": is a directory, expected a file");
  }
  if (!S_ISREG(st->st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError("open " + path + ": not a regular file");
  }
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<MappedFile>> MappedFile::Open(const std::string& path) {
  struct stat st;
  ASSIGN_OR_RETURN(int fd, OpenRegularFile(path, &st));
  auto file = std::unique_ptr<MappedFile>(new MappedFile());
  file->path_ = path;
  file->size_ = static_cast<size_t>(st.st_size);
  if (file->size_ > 0) {
    void* p = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      return ErrnoToStatus(err, "mmap", path);
    }
    file->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file alive
  return file;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  struct stat st;
  ASSIGN_OR_RETURN(int fd, OpenRegularFile(path, &st));
  std::string out;
  out.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return ErrnoToStatus(err, "read", path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

absl::Status WriteFileAtomic(const std::string& path, std::string_view contents) {
  ASSIGN_OR_RETURN(auto writer, AtomicFileWriter::Create(path));
  RETURN_IF_ERROR(writer->Append(contents.data(), contents.size()));
  return writer->Commit();
}

}  // namespace prunerd
