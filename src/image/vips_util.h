// Private to the libvips module (vips_module.h): an owning pointer, the error text of the failed
// call, the executable's services, and the conversion pipeline (vips_convert.cpp).
#pragma once

#include <vips/vips.h>

#include <memory>
#include <string>

#include "vips_module.h"

namespace lumen {

struct VipsUnref {
  void operator()(VipsImage* im) const {
    if (im) g_object_unref(im);
  }
};
using VipsPtr = std::unique_ptr<VipsImage, VipsUnref>;

// libvips keeps one global error buffer; take its text and clear it. Under concurrency the text
// may include another thread's message, so callers prefix it with what they were doing.
inline std::string TakeVipsError() {
  std::string s = vips_error_buffer();
  vips_error_clear();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (auto& c : s)
    if (c == '\n') c = ';';
  return s.empty() ? "unknown libvips error" : s;
}

// The last warning libvips logged on this thread (decode.cpp routes its GLib log there), then
// forgotten: a failed load often says why only there ("IHDR: CRC error") and leaves its error
// buffer empty.
std::string TakeLastVipsWarning();

// The executable's services (set by VipsModuleApi::start).
const VipsHost& Host();

// ConvertFile's libvips part (VipsModuleApi::convert); no exception leaves it.
Result<VipsConvertOutcome> ConvertWithVips(const VipsConvertRequest& request);

}  // namespace lumen
