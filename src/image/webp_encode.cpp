#include "webp_encode.h"

#include <algorithm>

#include <fmt/format.h>

namespace lumen {

Result<std::vector<uint8_t>> EncodeWebpPicture(WebPPicture* pic, int quality, int effort) {
  WebPConfig config;
  if (!WebPConfigPreset(&config, WEBP_PRESET_DEFAULT, float(std::clamp(quality, 0, 100)))) {
    WebPPictureFree(pic);
    return Status::Internal("libwebp version mismatch");
  }
  config.method = std::clamp(effort, 0, 6);
  WebPMemoryWriter writer;
  WebPMemoryWriterInit(&writer);
  pic->writer = WebPMemoryWrite;
  pic->custom_ptr = &writer;
  const bool ok = WebPEncode(&config, pic);
  const int code = pic->error_code;
  WebPPictureFree(pic);
  if (!ok) {
    WebPMemoryWriterClear(&writer);
    return Status::Internal(fmt::format("WebP encoding failed (error {})", code));
  }
  std::vector<uint8_t> out(writer.mem, writer.mem + writer.size);
  WebPMemoryWriterClear(&writer);
  return out;
}

}  // namespace lumen
