// XMP sidecars for tags, as digiKam and Lightroom read them.
//
// WriteTagsSidecar() adds keywords to dc:subject and hierarchical keywords
// ("animal|dog|retriever") to lr:hierarchicalSubject in the image's sidecar: "<stem>.xmp" when
// one already exists (Lightroom's name), else "<file>.xmp" (digiKam's and darktable's). An
// existing sidecar is merged: everything in it stays, keywords already present are not repeated.
// The new sidecar is written to a temporary file and renamed over the old one.
#pragma once

#include <string>
#include <vector>

#include "lumen/util/status.h"

namespace lumen {

// Returns the sidecar path written.
Result<std::string> WriteTagsSidecar(const std::string& image_path,
                                     const std::vector<std::string>& keywords,
                                     const std::vector<std::string>& hierarchical);

}  // namespace lumen
