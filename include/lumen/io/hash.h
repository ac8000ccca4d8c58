// Content hashes. An asset is identified by the XXH3-128 of its bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace lumen {

struct Hash128 {
  uint64_t hi = 0;
  uint64_t lo = 0;

  // 32 lowercase hex digits, high half first (the canonical XXH3-128 big-endian form).
  std::string Hex() const;
  static std::optional<Hash128> FromHex(std::string_view hex);
  // 16 bytes, big-endian: the catalog's BLOB form (sorts like Hex()).
  void ToBytes(unsigned char out[16]) const;
  static Hash128 FromBytes(const unsigned char in[16]);

  friend bool operator==(const Hash128&, const Hash128&) = default;
};

Hash128 HashBytes(const void* data, size_t size);

// Streaming XXH3-128: Update() over pieces, then Final() equals HashBytes() over all of them.
class Hasher {
 public:
  Hasher();
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;
  void Update(const void* data, size_t size);
  Hash128 Final() const;

 private:
  void* state_;
};

struct Hash128Hasher {
  size_t operator()(const Hash128& h) const {
    return static_cast<size_t>(h.lo ^ (h.hi * 0x9E3779B97F4A7C15ull));
  }
};

}  // namespace lumen
