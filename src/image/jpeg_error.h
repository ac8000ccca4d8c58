// Private: libjpeg error handling shared by lumen's own JPEG decoders (jpeg_dc.cpp,
// jpeg_scaled.cpp): a fatal libjpeg error jumps back to the caller's setjmp with the message.
#pragma once

#include <csetjmp>
#include <cstdio>

#include <jerror.h>
#include <jpeglib.h>

namespace lumen {

struct JpegErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool premature_end;  // a JWRN_JPEG_EOF warning was seen (where the emitter records it)
};

// For jpeg_error_mgr::error_exit.
inline void JpegErrorExit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

}  // namespace lumen
