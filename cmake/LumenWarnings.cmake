# Project-wide compile settings applied to lumen's own targets only (not to dependencies).
add_library(lumen_options INTERFACE)
target_compile_options(lumen_options INTERFACE -Wall -Wextra -Werror -Wno-missing-field-initializers)
target_include_directories(lumen_options INTERFACE ${PROJECT_SOURCE_DIR}/include)
if(LUMEN_SANITIZE)
  target_compile_options(lumen_options INTERFACE -fsanitize=address,undefined -fno-sanitize-recover=undefined
                                                 -fno-omit-frame-pointer)
  target_link_options(lumen_options INTERFACE -fsanitize=address,undefined)
endif()

# lumen_add_library(NAME SOURCES... DEPS ...): one library target per layer.
function(lumen_add_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_link_libraries(${name} PUBLIC lumen_options ${ARG_DEPS})
endfunction()
