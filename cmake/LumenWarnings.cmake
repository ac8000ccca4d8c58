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

# lumen_abi_id(VAR HEADERS...): the id a dlopen'ed module and the executables that load it agree
# on (vips_module.h, video_module.h): a hash of the headers whose types cross, the compiler and
# the sanitizer setting, so a module from another build is refused, never called. Reconfigures
# when a header changes.
function(lumen_abi_id var)
  set(text "${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION} sanitize=${LUMEN_SANITIZE}")
  foreach(header ${ARGN})
    file(READ ${header} body)
    string(APPEND text "${body}")
  endforeach()
  string(SHA256 hash "${text}")
  string(SUBSTRING "${hash}" 0 16 hash)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${ARGN})
  set(${var} ${hash} PARENT_SCOPE)
endfunction()
