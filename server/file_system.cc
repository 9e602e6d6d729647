#include "server/file_system.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "core/io/remove_tree.h"

namespace prunerd {
namespace {

absl::Status ErrnoError(absl::string_view what, const std::string& path, int err) {
  std::string msg = absl::StrCat(what, " ", path, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(msg);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(msg);
  if (err == ENOSPC || err == EDQUOT) return absl::ResourceExhaustedError(msg);
  return absl::InternalError(msg);
}

absl::Status FsyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open", path, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoError("fsync", path, err);
  return absl::OkStatus();
}

class PosixFileSystem : public FileSystem {
 public:
  absl::Status CreateDirs(const std::string& path) override {
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) return ErrnoError("mkdir", path, ec.value());
    return absl::OkStatus();
  }

  absl::Status WriteFile(const std::string& path, absl::string_view data) override {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoError("create", path, errno);
    size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        const int err = errno;
        ::close(fd);
        return ErrnoError("write", path, err);
      }
      off += static_cast<size_t>(n);
    }
    if (::close(fd) != 0) return ErrnoError("close", path, errno);
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> ReadFile(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoError("open", path, errno);
    std::string out;
    char buf[65536];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n < 0) {
        if (errno == EINTR) continue;
        const int err = errno;
        ::close(fd);
        return ErrnoError("read", path, err);
      }
      if (n == 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return out;
  }

  absl::Status SyncFile(const std::string& path) override { return FsyncPath(path, O_RDONLY); }
  absl::Status SyncDir(const std::string& path) override {
    return FsyncPath(path, O_RDONLY | O_DIRECTORY);
  }

  absl::Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return ErrnoError("rename", absl::StrCat(from, " -> ", to), errno);
    }
    return absl::OkStatus();
  }

  absl::Status RemoveAll(const std::string& path) override { return RemoveTree(path); }

  bool Exists(const std::string& path) override {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0;
  }

  bool IsDirectory(const std::string& path) override {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  }

  absl::StatusOr<std::vector<FileEntry>> ListFiles(const std::string& dir) override {
    std::vector<FileEntry> out;
    std::error_code ec;
    std::filesystem::recursive_directory_iterator it(dir, ec), end;
    if (ec) return ErrnoError("list", dir, ec.value());
    for (; it != end; it.increment(ec)) {
      if (ec) return ErrnoError("list", dir, ec.value());
      const auto& entry = *it;
      if (!entry.is_regular_file(ec) || entry.is_symlink(ec)) continue;
      out.push_back(FileEntry{
          .relative_path = std::filesystem::relative(entry.path(), dir, ec).generic_string(),
          .size = static_cast<int64_t>(entry.file_size(ec))});
    }
    std::sort(out.begin(), out.end(), [](const FileEntry& a, const FileEntry& b) {
      return a.relative_path < b.relative_path;
    });
    return out;
  }
};

}  // namespace

FileSystem* FileSystem::Default() {
  static FileSystem* fs = new PosixFileSystem;
  return fs;
}

std::string DirName(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

absl::Status WriteFileAtomically(FileSystem* fs, const std::string& path, absl::string_view data) {
  const std::string tmp = absl::StrCat(path, ".tmp");
  absl::Status s = fs->WriteFile(tmp, data);
  if (s.ok()) s = fs->SyncFile(tmp);
  if (s.ok()) s = fs->Rename(tmp, path);
  if (!s.ok()) {
    fs->RemoveAll(tmp).IgnoreError();
    return s;
  }
  return fs->SyncDir(DirName(path));
}

absl::Status SyncTree(FileSystem* fs, const std::string& dir) {
  auto files = fs->ListFiles(dir);
  if (!files.ok()) return files.status();
  std::vector<std::string> dirs = {dir};
  for (const FileEntry& f : *files) {
    const std::string p = absl::StrCat(dir, "/", f.relative_path);
    if (absl::Status s = fs->SyncFile(p); !s.ok()) return s;
    std::string d = DirName(p);
    if (std::find(dirs.begin(), dirs.end(), d) == dirs.end()) dirs.push_back(d);
  }
  for (const std::string& d : dirs) {
    if (absl::Status s = fs->SyncDir(d); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace prunerd
