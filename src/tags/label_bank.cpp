#include "lumen/tags/label_bank.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lumen/util/json.h"

namespace lumen::tags {
namespace {

constexpr char kMagic[8] = {'L', 'M', 'N', 'B', 'A', 'N', 'K', '1'};

size_t Align(size_t v, size_t a) {
  return (v + a - 1) / a * a;
}

struct Layout {
  std::string header;
  size_t rows_done_at, order_at, rows_at, total;
};

Layout MakeLayout(const BankKey& key, size_t count) {
  Layout l;
  nlohmann::json h{{"model_id", key.model_id},
                   {"vocab_hash", key.vocab_hash},
                   {"prompt", key.prompt},
                   {"dim", key.dim},
                   {"count", count}};
  l.header = json::Dump(h);
  l.rows_done_at = Align(16 + l.header.size(), 8);
  l.order_at = l.rows_done_at + 8;
  l.rows_at = Align(l.order_at + 4 * count, 64);
  l.total = l.rows_at + count * size_t(key.dim) * 4;
  return l;
}

Status WriteAt(int fd, const void* p, size_t n, size_t off, const std::string& path) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::pwrite(fd, c, n, static_cast<off_t>(off));
    if (w <= 0) return Status::Io(fmt::format("{}: write failed: {}", path, std::strerror(errno)));
    c += w;
    n -= static_cast<size_t>(w);
    off += static_cast<size_t>(w);
  }
  return Status::Ok();
}

}  // namespace

std::string FormatPrompt(const std::string& prompt, const std::string& term) {
  auto at = prompt.find("{}");
  if (at == std::string::npos) return prompt + " " + term;
  return prompt.substr(0, at) + term + prompt.substr(at + 2);
}

std::vector<uint32_t> PriorityOrder(const Vocabulary& vocab) {
  const auto& t = vocab.terms();
  std::vector<int> depth(t.size(), 0);
  for (size_t i = 0; i < t.size(); ++i) {
    int d = 0;
    for (int32_t p = t[i].parent; p >= 0 && d < 64; p = t[size_t(p)].parent) ++d;
    depth[i] = d;
  }
  std::vector<uint32_t> order(t.size());
  for (size_t i = 0; i < t.size(); ++i) order[i] = static_cast<uint32_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    bool wa = t[a].synset != 0, wb = t[b].synset != 0;
    if (wa != wb) return !wa;  // non-WordNet (supplemental, user) first
    return depth[a] < depth[b];
  });
  return order;
}

Status BuildLabelBank(const std::string& path, const BankKey& key, const Vocabulary& vocab,
                      const std::vector<uint32_t>& order, const EncodeFn& encode,
                      const BuildOptions& opt) {
  if (key.dim <= 0) return Status::Invalid("label bank: dim must be positive");
  const size_t count = order.size();
  const Layout l = MakeLayout(key, count);
  size_t done = 0;
  if (auto existing = LabelBank::Open(path, key); existing.ok() && (*existing)->count() == count) {
    done = (*existing)->rows_done();
    for (size_t i = 0; i < count; ++i)
      if ((*existing)->term(i) != order[i]) done = 0;  // another order: start over
  }
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return Status::Io(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (done == 0) {
    if (::ftruncate(fd, 0) != 0 || ::ftruncate(fd, static_cast<off_t>(l.total)) != 0)
      return Status::Io(fmt::format("{}: cannot size the file: {}", path, std::strerror(errno)));
    uint64_t hlen = l.header.size();
    LUMEN_RETURN_IF_ERROR(WriteAt(fd, kMagic, 8, 0, path));
    LUMEN_RETURN_IF_ERROR(WriteAt(fd, &hlen, 8, 8, path));
    LUMEN_RETURN_IF_ERROR(WriteAt(fd, l.header.data(), l.header.size(), 16, path));
    uint64_t zero = 0;
    LUMEN_RETURN_IF_ERROR(WriteAt(fd, &zero, 8, l.rows_done_at, path));
    LUMEN_RETURN_IF_ERROR(WriteAt(fd, order.data(), 4 * count, l.order_at, path));
    if (::fdatasync(fd) != 0) return Status::Io(fmt::format("{}: sync failed", path));
  }
  std::vector<std::string> texts;
  std::vector<float> rows;
  while (done < count) {
    const size_t n = std::min(opt.chunk, count - done);
    texts.clear();
    for (size_t i = done; i < done + n; ++i)
      texts.push_back(FormatPrompt(key.prompt, vocab.terms()[order[i]].text));
    rows.assign(n * size_t(key.dim), 0.f);
    LUMEN_RETURN_IF_ERROR(encode(texts, rows.data()));
    LUMEN_RETURN_IF_ERROR(
        WriteAt(fd, rows.data(), rows.size() * 4, l.rows_at + done * size_t(key.dim) * 4, path));
    if (::fdatasync(fd) != 0) return Status::Io(fmt::format("{}: sync failed", path));
    done += n;
    uint64_t d = done;
    LUMEN_RETURN_IF_ERROR(WriteAt(fd, &d, 8, l.rows_done_at, path));
    if (::fdatasync(fd) != 0) return Status::Io(fmt::format("{}: sync failed", path));
    if (opt.on_chunk && !opt.on_chunk(done, count)) break;
  }
  return Status::Ok();
}

Result<std::unique_ptr<LabelBank>> LabelBank::Open(const std::string& path, const BankKey& key) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::NotFound(fmt::format("{}: no label bank yet", path));
  struct stat st;
  ::fstat(fd, &st);
  size_t size = static_cast<size_t>(st.st_size);
  void* map = size >= 16 ? ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
  ::close(fd);
  if (map == MAP_FAILED)
    return Status::Corrupt(fmt::format("{}: not a label bank (too short)", path));
  std::unique_ptr<LabelBank> b(new LabelBank());
  b->map_ = map;
  b->map_size_ = size;
  const uint8_t* base = static_cast<const uint8_t*>(map);
  uint64_t hlen;
  std::memcpy(&hlen, base + 8, 8);
  if (std::memcmp(base, kMagic, 8) != 0 || hlen > size - 16)
    return Status::Corrupt(fmt::format("{}: not a label bank", path));
  auto h = nlohmann::json::parse(base + 16, base + 16 + hlen, nullptr, false);
  if (h.is_discarded() || !h.is_object())
    return Status::Corrupt(fmt::format("{}: damaged header", path));
  if (h.value("model_id", "") != key.model_id || h.value("vocab_hash", "") != key.vocab_hash ||
      h.value("prompt", "") != key.prompt || h.value("dim", 0) != key.dim)
    return Status::Invalid(fmt::format("{}: built for another model, vocabulary or prompt", path));
  size_t count = h.value("count", size_t(0));
  const Layout l = MakeLayout(key, count);
  if (l.header != std::string(reinterpret_cast<const char*>(base + 16), hlen) || l.total != size)
    return Status::Corrupt(
        fmt::format("{}: size {} does not match its header (truncated?)", path, size));
  uint64_t done;
  std::memcpy(&done, base + l.rows_done_at, 8);
  if (done > count) return Status::Corrupt(fmt::format("{}: rows_done beyond the end", path));
  b->count_ = count;
  b->rows_done_ = done;
  b->dim_ = key.dim;
  b->order_ = reinterpret_cast<const uint32_t*>(base + l.order_at);
  b->rows_ = reinterpret_cast<const float*>(base + l.rows_at);
  return b;
}

LabelBank::~LabelBank() {
  if (map_) ::munmap(map_, map_size_);
}

}  // namespace lumen::tags
