// A temporary file with given content, removed on every way out (destructor): the
// rewritten configurations fmirun and fmi-bench hand to the functions they start.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "tools/common/fd.h"

namespace FMI::Tools {

class TempFile {
 public:
  /// Creates <temp dir>/<stem>-XXXXXX<suffix>, mode 0600, writes `content`. Throws
  /// std::runtime_error naming the file. Owner-only: the content is a whole
  /// configuration, with the Redis password and the Direct secret when they are set,
  /// and the functions that read it run as the same user (in the NAT lab too).
  TempFile(const std::string& stem, const std::string& suffix, const std::string& content) {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / (stem + "-XXXXXX" + suffix)).string();
    Fd fd(::mkstemps(tmpl.data(), static_cast<int>(suffix.size())));
    if (!fd)
      throw std::runtime_error("cannot create a temporary file " + tmpl + ": " +
                               std::strerror(errno));
    path_ = tmpl;
    std::size_t off = 0;
    while (off < content.size()) {
      ssize_t n = ::write(fd.get(), content.data() + off, content.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int err = errno;
        ::unlink(path_.c_str());
        throw std::runtime_error("cannot write " + tmpl + ": " + std::strerror(err));
      }
      off += static_cast<std::size_t>(n);
    }
    // mkstemps creates 0600 already; said again so that no umask or libc differs.
    if (::fchmod(fd.get(), 0600) != 0) {
      const int err = errno;
      ::unlink(path_.c_str());
      throw std::runtime_error("cannot chmod " + tmpl + ": " + std::strerror(err));
    }
  }
  ~TempFile() { ::unlink(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace FMI::Tools
