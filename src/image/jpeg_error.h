// Private: libjpeg error handling shared by lumen's own JPEG decoders (jpeg_dc.cpp,
// jpeg_scaled.cpp): a fatal libjpeg error jumps back to the caller's setjmp with the message.
#pragma once

#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstring>

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

// `err` cleared and made the error manager of a libjpeg encoder or decoder: its fatal errors
// jump to err->jump with the message. For jpeg_*_struct::err.
inline jpeg_error_mgr* UseJpegErrors(JpegErrorManager* err) {
  std::memset(err, 0, sizeof(*err));
  jpeg_error_mgr* pub = jpeg_std_error(&err->pub);
  pub->error_exit = JpegErrorExit;
  return pub;
}

// A progress monitor that bounds a decode (issue 15): more than `max_scans` scans of a
// progressive file (a few hundred bytes each can cost a pass over every block), a deadline
// passed (CLOCK_MONOTONIC ns, 0: none) or `stop()` true end it as a libjpeg error does,
// through the JpegErrorManager's jump, with the reason as its message. libjpeg calls the monitor
// between scans while it reads the file and before every row it hands out.
struct JpegLimits {
  jpeg_progress_mgr pub;
  int max_scans = 0;  // 0: none
  uint64_t deadline_ns = 0;
  bool (*stop)() = nullptr;
  bool tripped = false;  // set by the monitor when it ends the decode
};

void JpegLimitMonitor(j_common_ptr cinfo);

// Why `limits` end the work now, if they do: "stopped by a signal" or "took longer than the time
// limit" (the monitor's reasons, also checked between the steps after a decode); null if not.
const char* JpegLimitReached(const JpegLimits& limits);

// Installs `limits` on the decompressor (before jpeg_read_header).
inline void UseJpegLimits(jpeg_decompress_struct* cinfo, JpegLimits* limits) {
  limits->pub.progress_monitor = JpegLimitMonitor;
  cinfo->progress = &limits->pub;
}

}  // namespace lumen
