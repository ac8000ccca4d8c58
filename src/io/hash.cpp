#include "lumen/io/hash.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace lumen {

std::string Hash128::Hex() const {
  static const char* digits = "0123456789abcdef";
  std::string s(32, '0');
  for (int i = 0; i < 16; ++i) {
    s[15 - i] = digits[(hi >> (4 * i)) & 0xF];
    s[31 - i] = digits[(lo >> (4 * i)) & 0xF];
  }
  return s;
}

std::optional<Hash128> Hash128::FromHex(std::string_view hex) {
  if (hex.size() != 32) return std::nullopt;
  Hash128 h;
  for (size_t i = 0; i < 32; ++i) {
    char c = hex[i];
    uint64_t v;
    if (c >= '0' && c <= '9')
      v = c - '0';
    else if (c >= 'a' && c <= 'f')
      v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v = c - 'A' + 10;
    else
      return std::nullopt;
    uint64_t& half = i < 16 ? h.hi : h.lo;
    half = (half << 4) | v;
  }
  return h;
}

void Hash128::ToBytes(unsigned char out[16]) const {
  for (int i = 0; i < 8; ++i) {
    out[i] = static_cast<unsigned char>(hi >> (56 - 8 * i));
    out[8 + i] = static_cast<unsigned char>(lo >> (56 - 8 * i));
  }
}

Hash128 Hash128::FromBytes(const unsigned char in[16]) {
  Hash128 h;
  for (int i = 0; i < 8; ++i) {
    h.hi = (h.hi << 8) | in[i];
    h.lo = (h.lo << 8) | in[8 + i];
  }
  return h;
}

Hash128 HashBytes(const void* data, size_t size) {
  XXH128_hash_t r = XXH3_128bits(data, size);
  return Hash128{r.high64, r.low64};
}

Hasher::Hasher() : state_(XXH3_createState()) {
  XXH3_128bits_reset(static_cast<XXH3_state_t*>(state_));
}
Hasher::~Hasher() {
  XXH3_freeState(static_cast<XXH3_state_t*>(state_));
}
void Hasher::Update(const void* data, size_t size) {
  XXH3_128bits_update(static_cast<XXH3_state_t*>(state_), data, size);
}
Hash128 Hasher::Final() const {
  XXH128_hash_t h = XXH3_128bits_digest(static_cast<XXH3_state_t*>(state_));
  return {h.high64, h.low64};
}

}  // namespace lumen
