// Private to the server layer: the web app's files, compiled in (embed.cmake writes the table).
#pragma once

#include <cstddef>
#include <vector>

namespace lumen::server {

struct WebAsset {
  const char* path;  // "/app.js"
  const char* type;  // its Content-Type
  const unsigned char* data;
  size_t size;
};
const std::vector<WebAsset>& WebAssets();

}  // namespace lumen::server
